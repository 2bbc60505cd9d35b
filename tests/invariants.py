"""Invariant checks on documents and records, shared by the tests (I1, I2/I7)."""

from __future__ import annotations

from typing import Any

EC2_FIELDS = ("recoveredInstanceId", "instanceType", "privateIp", "launchTime")
WAVE_ORDER = {"PENDING": 0, "LAUNCHING": 1, "COMPLETED": 2, "PARTIAL": 2, "FAILED": 2, "CANCELLED": 2}


def torn_waves(document: dict[str, Any]) -> list[str]:
    """I7: waves a reader saw green (COMPLETED/PARTIAL) while a launched server lacks EC2 data.

    A PARTIAL wave may carry a launched server without data only when that server says why.
    """
    problems = []
    for wave in document["waves"]:
        if wave["status"] not in ("COMPLETED", "PARTIAL"):
            continue
        for server in wave["servers"]:
            launched = server["launchStatus"] in ("LAUNCHED", "TERMINATED")
            explained = wave["status"] == "PARTIAL" and server.get("error")
            if launched and not explained and not all(server.get(f) for f in EC2_FIELDS):
                problems.append(
                    f"wave {wave['waveNumber']} {wave['status']}: {server['sourceServerId']} lacks EC2 data"
                )
            if wave["status"] == "COMPLETED" and not launched:
                problems.append(
                    f"wave {wave['waveNumber']} COMPLETED: {server['sourceServerId']} not launched"
                )
    return problems


def regressions(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """I1 as a reader sees it: no wave moves back, and a terminal wave never changes status."""
    if before is None:
        return []
    problems = []
    for old, new in zip(before["waves"], after["waves"], strict=True):
        if WAVE_ORDER[new["status"]] < WAVE_ORDER[old["status"]]:
            problems.append(f"wave {old['waveNumber']} went {old['status']} -> {new['status']}")
        elif WAVE_ORDER[old["status"]] == 2 and new["status"] != old["status"]:
            problems.append(f"terminal wave {old['waveNumber']} changed {old['status']} -> {new['status']}")
    return problems
