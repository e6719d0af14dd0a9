"""Entity tags of the read answers and the ``If-None-Match`` check (RFC 9110, 8.8.3, 13.1.2).

A learner answer's tag is ``"<version>-<digest>"``: the learner version the rows were read
at (``user_progress.version``), then a digest of the body. The version alone would not do:
versions restart at 1 after an erasure, and an answer with catalog data (achievement names)
changes without the learner's version. The tags are strong: the same tag means the same
bytes, whether the answer came from Redis or PostgreSQL. Catalog listings have no version:
their tag is the digest.
"""

from __future__ import annotations

import hashlib


def _digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=8).hexdigest()


def learner_etag(version: int, body: bytes) -> str:
    return f'"{version}-{_digest(body)}"'


def catalog_etag(body: bytes) -> str:
    return f'"{_digest(body)}"'


def none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (or is ``*``): then the answer is 304.
    Weak comparison, as the RFC asks for this header: ``W/"x"`` matches ``"x"``."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(
        tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(",") if tag.strip()
    )
