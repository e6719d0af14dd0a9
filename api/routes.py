"""Every route of the API, in one table."""

from __future__ import annotations

from aiohttp import web

from adapters.publishing import CATALOG_KINDS, DELETABLE_KINDS
from api import views

# Other kinds are not routes (404); DELETE of a course is not allowed (405).
_KIND = "{kind:" + "|".join(CATALOG_KINDS) + "}"
_DELETABLE_KIND = "{kind:" + "|".join(DELETABLE_KINDS) + "}"


def setup_routes(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.get("/healthz", views.healthz),
            web.get("/readyz", views.readyz),
            web.get("/users/{user_id}/progress", views.user_progress),
            web.get("/users/{user_id}/courses", views.courses),
            web.get("/users/{user_id}/courses/{course_id}", views.course),
            web.get("/users/{user_id}/courses/{course_id}/modules/{module_id}", views.module),
            web.get("/users/{user_id}/courses/{course_id}/lessons/{lesson_id}", views.lesson),
            web.get("/users/{user_id}/quiz-attempts", views.quiz_attempts),
            web.get("/users/{user_id}/assignments", views.assignments),
            web.get("/users/{user_id}/learning-paths", views.learning_paths),
            web.get("/users/{user_id}/competencies", views.competencies),
            web.get("/users/{user_id}/achievements", views.achievements),
            web.get("/catalog/competencies", views.competency_catalog),
            web.get("/catalog/achievements", views.achievement_catalog),
            web.get("/catalog/learning-paths", views.learning_path_catalog),
            # Admin routes need a staff or service token with the right scope (api/auth.py).
            web.put(f"/admin/catalog/{_KIND}/{{entry_id}}", views.put_catalog_entry),
            web.delete(
                f"/admin/catalog/{_DELETABLE_KIND}/{{entry_id}}", views.delete_catalog_entry
            ),
            web.delete("/admin/learners/{user_id}", views.erase_learner),
        ]
    )
