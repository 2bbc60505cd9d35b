"""Figures the reliability battery records, for `make reliability` to print.

Every reliability test counts what it did (faults injected per kind, bad inputs tried, lost
updates found, ...) and calls `record(name, figures)`. When `RELIABILITY_FIGURES` names a folder
(set by `make reliability` and `make test`), each call writes one JSON file there; otherwise it
writes nothing. The report (`tests/reliability/report.py`) sums the files: numbers add up,
nested dicts of numbers add up key by key, lists are concatenated.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

ENV = "RELIABILITY_FIGURES"


def record(name: str, figures: dict[str, Any]) -> Path | None:
    """Write `figures` under `name` (a component: state_machine, history, fidelity, bad_input, ...)."""
    folder = os.environ.get(ENV)
    if not folder:
        return None
    path = Path(folder) / f"{name}-{uuid.uuid4().hex[:12]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"component": name, "figures": figures}, sort_keys=True))
    return path


def merge(into: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    """Add `figures` into `into`: numbers add, dicts merge recursively, lists concatenate."""
    for key, value in figures.items():
        if isinstance(value, bool) or not isinstance(value, int | float | dict | list):
            into[key] = value
        elif isinstance(value, dict):
            into[key] = merge(dict(into.get(key) or {}), value)
        elif isinstance(value, list):
            into[key] = [*into.get(key, []), *value]
        else:
            into[key] = into.get(key, 0) + value
    return into


def load(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Every recorded file in `folder`, merged per component."""
    merged: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        merge(merged.setdefault(data["component"], {}), data["figures"])
    return merged
