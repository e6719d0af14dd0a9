"""Every route of the API, in one table."""

from __future__ import annotations

from aiohttp import web

from api import views


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
        ]
    )
