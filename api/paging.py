"""Pages of a list: the ``Link`` header (RFC 8288) of every list answer.

Every list is an envelope whose first fields are ``total``, ``limit`` and ``offset``
(``api.queries.Page``). A cached list is a body only, so its page is read back from the
start of that body; the models serialize those fields first and without spaces, and a body
that does not start so is parsed whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from yarl import URL

_PREFIX = re.compile(rb'\{"total":([0-9]+),"limit":([0-9]+),"offset":([0-9]+)[,}]')


@dataclass(frozen=True, slots=True)
class PageInfo:
    total: int
    limit: int
    offset: int

    @property
    def last_offset(self) -> int:
        """The offset of the last page (0 when the list is empty)."""
        return 0 if self.total == 0 else (self.total - 1) // self.limit * self.limit


def page_of(body: bytes) -> PageInfo:
    """The page of a serialized list envelope; ``ValueError`` if the body is not one."""
    found = _PREFIX.match(body)
    if found is not None:
        total, limit, offset = (int(part) for part in found.groups())
        return PageInfo(total, limit, offset)
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError("not a list envelope")
    return PageInfo(int(value["total"]), int(value["limit"]), int(value["offset"]))


def link_header(url: URL, page: PageInfo) -> str:
    """``first`` and ``last`` always, ``prev`` unless on the first page, ``next`` unless
    on the last. Targets are relative references (the request's path and query, every
    other parameter kept), so they stay right behind a proxy that rewrites the host."""
    relations = {"first": 0}
    if page.offset > 0:
        relations["prev"] = max(0, min(page.offset - page.limit, page.last_offset))
    if page.offset + page.limit < page.total:
        relations["next"] = page.offset + page.limit
    relations["last"] = page.last_offset
    base = url.relative() if url.absolute else url
    return ", ".join(
        f'<{base.update_query(limit=page.limit, offset=offset)}>; rel="{rel}"'
        for rel, offset in relations.items()
    )
