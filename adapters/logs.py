"""Log output of every process: ``LOG_FORMAT=text`` (a line for a person) or ``json`` (one JSON
object per line, for a log pipeline).

A JSON line carries ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, the
traceback as ``exc_info`` when there is one, every field a call passed in ``extra=`` (the
worker and the sink pass ``topic``, ``partition``, ``offset``, ``key``, ``error_type`` and,
once an event decoded, ``event_id`` when a line is about one event), and ``request_id``
while the API answers a request (``REQUEST_ID``).
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The request the current task is answering (set by the API's middleware; each request is
# handled in its own task, so concurrent requests never see each other's id).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# An incoming X-Request-ID is kept only if it is short and plain: it goes into every log
# line of the request and back into a response header.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

# What every LogRecord has: anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def request_id(incoming: str | None) -> str:
    """The caller's request id if it is usable, else a new one."""
    if incoming is not None and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = REQUEST_ID.get()
        if current is not None:
            line["request_id"] = current
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        # default=str: an extra that is not JSON (a datetime, an exception) is still logged.
        return json.dumps(line, default=str, ensure_ascii=False)


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the format: one handler on stderr for the root.

    The worker hands it to Faust's worker, which configures logging itself.
    """
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def configure_logging(log_format: LogFormat, level: str) -> None:
    """Configure the root logger of a process."""
    logging.config.dictConfig(logging_config(log_format, level))
    # aiokafka narrates every rebalance and metadata change at INFO.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.root.level))
