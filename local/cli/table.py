"""Render an execution document as a plain-text table for terminals (demo, CLI tools).

Each wave's header line names the account and Region it recovers in (`accountId`, `region`), then
its status, job and times; a wave whose start DRS deferred says why (`startProblem`), and one
whose account the hub cannot reach says so (`accessProblem`), and a drill's clean-up its status and
TERMINATE jobs (`cleanupStatus`, `cleanupJobIds`; each server's EC2 state is the EC2 column)."""

from __future__ import annotations

from typing import Any

COLUMNS = (
    ("HOST", "hostname"),
    ("SOURCE SERVER", "sourceServerId"),
    ("LAUNCH", "launchStatus"),
    ("INSTANCE", "recoveredInstanceId"),
    ("TYPE", "instanceType"),
    ("PRIVATE IP", "privateIp"),
    ("LAUNCH TIME", "launchTime"),
    ("EC2", "ec2State"),
)


def _cell(value: Any) -> str:
    return "-" if value in (None, "") else str(value)


def target(wave: dict[str, Any]) -> str:
    """`123456789012/us-east-1`: the account and Region a wave recovers in ("-" where unknown)."""
    return f"{_cell(wave.get('accountId'))}/{_cell(wave.get('region'))}"


def render(document: dict[str, Any]) -> str:
    """The execution header, then per wave a header line and one row per server."""
    drill = "drill" if document.get("isDrill") else "recovery"
    lines = [
        f"Execution {document['executionId']}  {document['name']!r}  ({drill})  status {document['status']}",
        f"  created {document['createdAt']}  updated {document['updatedAt']}",
    ]
    rows = [s for w in document["waves"] for s in w["servers"]]
    widths = [
        max(len(title), *(len(_cell(r.get(key))) for r in rows)) if rows else len(title)
        for title, key in COLUMNS
    ]
    header = "  ".join(title.ljust(width) for (title, _), width in zip(COLUMNS, widths, strict=True))
    for wave in document["waves"]:
        span = f"{_cell(wave.get('startTime'))} -> {_cell(wave.get('endTime'))}"
        lines.append("")
        lines.append(
            f"Wave {wave['waveNumber']}  {wave['name']}  account {target(wave)}  {wave['status']}  "
            f"job {_cell(wave.get('jobId'))}  {span}"
        )
        if wave.get("error"):
            lines.append(f"  ! {wave['error']}")
        if wave.get("accessProblem"):
            lines.append(f"  ! account unreachable: {wave['accessProblem']}")
        if wave.get("cleanupStatus"):
            jobs = ", ".join(wave.get("cleanupJobIds") or []) or "-"
            problem = f": {wave['cleanupError']}" if wave.get("cleanupError") else ""
            lines.append(f"  clean-up {wave['cleanupStatus']} (terminate job {jobs}){problem}")
        if wave.get("startProblem"):
            retry = f" (tried again from {wave['startRetryAt']})" if wave.get("startRetryAt") else ""
            lines.append(f"  ! start deferred: {wave['startProblem']}{retry}")
        lines.append(("  " + header).rstrip())
        for server in wave["servers"]:
            cells = [
                _cell(server.get(key)).ljust(width) for (_, key), width in zip(COLUMNS, widths, strict=True)
            ]
            lines.append("  " + "  ".join(cells).rstrip())
            if server.get("error"):
                lines.append(f"    ! {server['error']}")
    return "\n".join(lines)
