"""The API's exceptions: each is an answer for the client (``progress.errors`` holds the
root). The error middleware (``api.app``) answers every ``ApiError`` with its status, code,
detail and headers; anything else that escapes a handler is a 500 or, for the database, a
503."""

from __future__ import annotations

from progress.errors import ProgressError


class ApiError(ProgressError):
    """An answer for the client: its HTTP status, an error ``code`` and a readable detail."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers

    @classmethod
    def bad_request(cls, detail: str) -> ApiError:
        return cls(400, "bad_request", detail)

    @classmethod
    def not_found(cls, detail: str) -> ApiError:
        return cls(404, "not_found", detail)

    @classmethod
    def unsupported_media_type(cls, detail: str) -> ApiError:
        return cls(415, "unsupported_media_type", detail)

    @classmethod
    def unavailable(cls, detail: str) -> ApiError:
        return cls(503, "unavailable", detail)
