"""Printing one section's figures when a bench module runs on its own."""

from __future__ import annotations

import json
from typing import Any


def print_figures(section: str, params: dict[str, Any], figures: dict[str, Any]) -> None:
    """The parameters, then one figure per line (names carry their units), then the JSON."""
    print(f"{section}: " + ", ".join(f"{name}={value}" for name, value in params.items()))
    width = max((len(name) for name in figures), default=0)
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value}")
    print(json.dumps({"section": section, "params": params, "figures": figures}, default=str))
