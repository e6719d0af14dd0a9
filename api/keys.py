"""Typed keys for what the app holds: its settings and the clients built in cleanup_ctx."""

from __future__ import annotations

from aiohttp import web
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from adapters.cache import ProgressCache
from adapters.metrics import ApiMetrics
from adapters.publishing import CatalogPublisher
from adapters.settings import Settings
from api.auth import Authenticator

SETTINGS = web.AppKey("settings", Settings)
PG_POOL = web.AppKey("pg_pool", AsyncConnectionPool)
REDIS = web.AppKey("redis", Redis)
CACHE = web.AppKey("cache", ProgressCache)
PUBLISHER = web.AppKey("publisher", CatalogPublisher)
METRICS = web.AppKey("metrics", ApiMetrics)
# A union is no class to pass as the second argument: the key takes it as its type argument.
AUTH = web.AppKey[Authenticator]("auth")
# The OpenAPI document (api.openapi), serialized once when the app is created.
OPENAPI = web.AppKey("openapi", bytes)
