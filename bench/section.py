"""What every benchmark section returns: figures for latest.json, rows for the table, targets.

A section module exposes `run(options: Options) -> Section`. Figures are plain JSON values
(nested dicts of numbers and strings); rows are what the table prints, in order; each target
says what was measured, what the issue asks for, and whether it was met, so a missed target is
reported rather than hidden.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger("bench")
Scale = Literal["default", "full", "smoke"]


@dataclass(frozen=True)
class Options:
    """How a run is sized. `smoke` is for the test suite: tiny sizes, no latency, one repeat."""

    scale: Scale = "default"
    repeat: int = 3
    seed: int = 20261127

    @property
    def smoke(self) -> bool:
        return self.scale == "smoke"


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: str
    met: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "goal": self.goal, "measured": self.measured, "met": self.met}


@dataclass
class Section:
    name: str
    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0

    def row(self, label: str, value: object) -> None:
        self.rows.append((label, value if isinstance(value, str) else _fmt(value)))

    def target(self, name: str, goal: str, measured: object, met: bool) -> None:
        self.targets.append(
            Target(name, goal, measured if isinstance(measured, str) else _fmt(measured), met)
        )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
