"""Every route of the API, in one table: what aiohttp serves and what ``/openapi.json``
describes are both read from ``ROUTES``, so the two cannot differ.

Adding a route is one ``Route(...)`` line here: its method, path (aiohttp's pattern), handler,
a summary, the model of its answer, its query parameters, its body and who may call it. Who
may call it is enforced by ``api.auth.authorize`` (by path); ``tests/unit/test_api_contract``
checks that each line's ``access`` says what ``authorize`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import TypeAdapter

from adapters.publishing import CATALOG_KINDS, DELETABLE_KINDS
from api import course_queries, course_views, dashboard, docs, live, queries, views
from api.auth import Scope
from api.bodies import (
    CatalogEntryBody,
    ErasureAccepted,
    ErasureBody,
    Health,
    LearnerExport,
    Published,
    Readiness,
    TombstoneBody,
)
from progress.models import LessonProgress, UserProgress

# Who may call a route: anyone ("public"), any valid token ("token"), the learner of the
# path's user_id or a token with progress:read ("learner"), or a staff/service token with
# the scope named.
Access = Literal["public", "token", "learner"] | Scope
# What the answer is: a model's JSON, a read of a learner's rows (with ETag, X-Cache and,
# for a list envelope, Link), a read of a course's rows (the same headers), a catalog
# listing (ETag, Link), or a document (not JSON rows).
Shape = Literal["json", "learner", "course", "listing", "document"]


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter: its name, what it takes (a pydantic type) and what it means."""

    name: str
    schema: TypeAdapter[Any]
    description: str


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # aiohttp's pattern: {name} or {name:regex}
    handler: Handler
    summary: str
    answer: Any  # the model (or type) of the success body; for a document, its media type
    access: Access
    shape: Shape = "json"
    status: int = 200
    query: tuple[Param, ...] = ()
    body: Any = None  # the model (or type) of the request body, None: no body
    body_required: bool = False


_LIMIT = Param("limit", views.LIMIT, f"page size (default {views.DEFAULT_LIMIT})")
_OFFSET = Param("offset", views.OFFSET, "rows to skip (default 0)")
_PAGE = (_LIMIT, _OFFSET)
_STATUS = Param("status", views.STATUS, "only courses in this status")
_COURSE = Param("course_id", views.ID, "only this course's")
_QUIZ = Param("quiz_id", views.ID, "only this quiz's")
_LIVE_USER = Param("user_id", views.ID, "follow this learner (exactly one of user_id, course_id)")
_LIVE_COURSE = Param("course_id", views.ID, "follow this course (needs courses:read)")
_ROSTER_STATUS = Param("status", views.STATUS, "only learners in this status")
_IDLE = Param("idle_days", course_views.IDLE_DAYS, "only learners idle at least this many days")
_SORT = Param(
    "sort", course_views.SORT, f"order: {', '.join(course_views.SORTS)} (default user_id)"
)
_IDLE_STATS = Param(
    "idle_days",
    course_views.IDLE_DAYS,
    f"idle means no activity for this many days (default {course_views.DEFAULT_STATS_IDLE_DAYS})",
)

# Other kinds are not routes (404); DELETE of a course is not allowed (405).
_KIND = "{kind:" + "|".join(CATALOG_KINDS) + "}"
_DELETABLE_KIND = "{kind:" + "|".join(DELETABLE_KINDS) + "}"
_USER = "/users/{user_id}"

ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", views.healthz, "The process is alive", Health, "public"),
    Route(
        "GET", "/readyz", views.readyz, "PostgreSQL and Redis answer", Readiness, "public"
    ),
    Route(
        "GET", "/openapi.json", docs.openapi_json, "This document", "application/json",
        "public", "document",
    ),
    Route("GET", "/docs", docs.docs_page, "The API's docs page", "text/html", "public", "document"),
    Route(
        "GET", "/metrics", views.metrics, "Prometheus metrics (docs/operations.md#metrics)",
        "text/plain", "public", "document",
    ),
    # Reads of a learner: the learner's own token, or staff with progress:read.
    Route(
        "GET", f"{_USER}/progress", views.user_progress, "A learner's overview", UserProgress,
        "learner", "learner",
    ),
    Route(
        "GET", f"{_USER}/courses", views.courses, "A learner's courses, by course id",
        queries.CourseList, "learner", "learner", query=(_STATUS, *_PAGE),
    ),
    Route(
        "GET", f"{_USER}/courses/{{course_id}}", views.course, "A course with its modules",
        queries.CourseDetail, "learner", "learner",
    ),
    Route(
        "GET", f"{_USER}/courses/{{course_id}}/modules/{{module_id}}", views.module,
        "A module with its lessons", queries.ModuleDetail, "learner", "learner",
    ),
    Route(
        "GET", f"{_USER}/courses/{{course_id}}/lessons/{{lesson_id}}", views.lesson,
        "A lesson", LessonProgress, "learner", "learner",
    ),
    Route(
        "GET", f"{_USER}/quiz-attempts", views.quiz_attempts,
        "Quiz attempts with their responses, by quiz id then attempt number",
        queries.QuizAttemptList, "learner", "learner", query=(_COURSE, _QUIZ, *_PAGE),
    ),
    Route(
        "GET", f"{_USER}/assignments", views.assignments,
        "Assignment submissions, by course id, assignment id, then creation",
        queries.AssignmentList, "learner", "learner", query=(_COURSE, *_PAGE),
    ),
    Route(
        "GET", f"{_USER}/learning-paths", views.learning_paths, "Learning paths, by id",
        queries.LearningPathList, "learner", "learner", query=_PAGE,
    ),
    Route(
        "GET", f"{_USER}/competencies", views.competencies,
        "Competencies with their evidence, by competency id",
        queries.CompetencyList, "learner", "learner", query=_PAGE,
    ),
    Route(
        "GET", f"{_USER}/achievements", views.achievements,
        "Earned achievements with the catalog's name and points, by time earned",
        queries.AchievementList, "learner", "learner", query=_PAGE,
    ),
    # Catalog listings: any valid token.
    Route(
        "GET", "/catalog/competencies", views.competency_catalog, "Competencies, by id",
        queries.CompetencyCatalog, "token", "listing", query=_PAGE,
    ),
    Route(
        "GET", "/catalog/achievements", views.achievement_catalog, "Achievements, by id",
        queries.AchievementCatalog, "token", "listing", query=_PAGE,
    ),
    Route(
        "GET", "/catalog/learning-paths", views.learning_path_catalog, "Learning paths, by id",
        queries.LearningPathCatalog, "token", "listing", query=_PAGE,
    ),
    # The dashboard (api/static/: no data, no token) and its live notices (server-sent
    # events; the stream checks the token against its user_id or course_id itself).
    Route(
        "GET", dashboard.PAGE_PATH, dashboard.page, "The dashboard page", "text/html", "public",
        "document",
    ),
    Route(
        "GET", dashboard.SCRIPT_PATH, dashboard.script, "The dashboard's script",
        "text/javascript", "public", "document",
    ),
    Route(
        "GET", dashboard.STYLE_PATH, dashboard.style, "The dashboard's style", "text/css",
        "public", "document",
    ),
    Route(
        "GET", "/events", live.events,
        "A learner's or a course's change notices, as server-sent events",
        "text/event-stream", "token", "document", query=(_LIVE_USER, _LIVE_COURSE),
    ),
    # Course staff: a staff or service token with courses:read.
    Route(
        "GET", "/courses/{course_id}/learners", course_views.course_learners,
        "A course's learners: filtered, sorted, paged", course_queries.CourseLearners,
        "courses:read", "course", query=(_ROSTER_STATUS, _IDLE, _SORT, *_PAGE),
    ),
    Route(
        "GET", "/courses/{course_id}/stats", course_views.course_stats,
        "A course's counts, module and item funnel, quizzes and idle learners",
        course_queries.CourseStats, "courses:read", "course", query=(_IDLE_STATS,),
    ),
    # Admin: a staff or service token with the scope.
    Route(
        "PUT", f"/admin/catalog/{_KIND}/{{entry_id}}", views.put_catalog_entry,
        "Publish a catalog entry", Published, "catalog:write", status=202,
        body=CatalogEntryBody, body_required=True,
    ),
    Route(
        "DELETE", f"/admin/catalog/{_DELETABLE_KIND}/{{entry_id}}", views.delete_catalog_entry,
        "Publish a catalog entry's tombstone", Published, "catalog:write", status=202,
        body=TombstoneBody,
    ),
    Route(
        "DELETE", "/admin/learners/{user_id}", views.erase_learner,
        "Request the erasure of every record of a learner", ErasureAccepted, "learners:erase",
        status=202, body=ErasureBody,
    ),
    Route(
        "GET", "/admin/learners/{user_id}/export", views.export_learner,
        "Every row PostgreSQL holds of a learner, by table (an access request)", LearnerExport,
        "learners:export",
    ),
)  # fmt: skip


def setup_routes(app: web.Application) -> None:
    app.router.add_routes([web.route(r.method, r.path, r.handler) for r in ROUTES])
