"""``progress contract``: the machine-readable contract, written to docs/ and checked.

docs/openapi.json (the API, ``api.openapi``) and docs/asyncapi.json (the topics,
``adapters.asyncapi``) are generated from the routes, topics and pydantic models; the
committed files are what a reader (or a code generator) takes without running anything.
``--check`` fails when they differ from what the code generates: scripts/test.sh runs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters import asyncapi
from api import openapi


def _text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """Each contract file's name and its text as the code generates it now."""
    return {
        "openapi.json": _text(openapi.document()),
        "asyncapi.json": _text(asyncapi.document()),
    }


def write(directory: Path) -> list[Path]:
    """Write the files that changed; returns them."""
    written = []
    for name, text in rendered().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def stale(directory: Path) -> list[Path]:
    """The files that are missing or differ from what the code generates."""
    return [
        directory / name
        for name, text in rendered().items()
        if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text
    ]
