"""docs/operations.md lists every setting, with the default the code has."""

from __future__ import annotations

import re
from pathlib import Path

from adapters.settings import Settings

DOC = Path(__file__).parents[2] / "docs" / "operations.md"


def test_every_setting_is_documented_with_its_default() -> None:
    rows = {
        name: default
        for names, default in re.findall(
            r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \| ([^|]+) \|", DOC.read_text(), re.M
        )
        for name in re.findall(r"`([A-Z_]+)`", names)
    }
    for name, field in Settings.model_fields.items():
        assert name.upper() in rows, f"{name.upper()} is not in docs/operations.md"
        default = field.default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert rows[name.upper()].strip() == f"`{default:g}`", name.upper()
