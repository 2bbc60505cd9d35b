"""The RTO report: how long recovery took against the plan's target, and its CSV and Markdown forms.

Every time is a stored fact. The clock starts at the execution's `createdAt` (the moment recovery
was declared: the plan was recorded) and stops, per server, at its `recoveredAt`: when the
reconciler first stored it LAUNCHED with all four EC2 details, in the very write that made it
complete (reconciler.core), so the report can never show a server recovered that the document
does not. Pure arithmetic on records and documents, no I/O:

- a server: `rtoSeconds` = recoveredAt - start; its target is its wave's.
- a wave: once COMPLETED or PARTIAL, the latest recoveredAt of its servers - start; its target
  is its own `rtoTargetSeconds`, else the execution's.
- the execution: once finished, the latest of its waves'; its target is its own.

`rtoMet` is null with no target or while the outcome is unknown. It is true only when the time
is at most the target and everything was recovered: a wave or execution that ended otherwise than
COMPLETED did not meet its target (a server never recovered is not "recovered in time"), nor did a
server whose wave ended without it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from schemas.api import ExecutionDocument, ServerDocument, WaveDocument
from schemas.records import TERMINAL_EXECUTION_STATUSES, ExecutionStatus, ServerRecord, WaveRecord, WaveStatus
from schemas.times import parse_time

_RECOVERED_WAVE = frozenset({WaveStatus.COMPLETED, WaveStatus.PARTIAL})
_LAUNCHED = frozenset({"LAUNCHED", "TERMINATED"})


class ReportFormat(StrEnum):
    CSV = "csv"
    MARKDOWN = "markdown"


MEDIA_TYPES = {ReportFormat.CSV: "text/csv", ReportFormat.MARKDOWN: "text/markdown"}


class ReportRefused(ValueError):
    """A report query the route refuses (400), each problem listed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_report_query(parameters: Mapping[str, str] | None) -> ReportFormat:
    """`?format=csv|markdown` (default markdown). Any other parameter is refused: a typo such as
    `?fromat=csv` must not silently answer Markdown."""
    parameters = parameters or {}
    formats = ", ".join(f.value for f in ReportFormat)
    problems = [
        f"{name[:40]}: unknown parameter (only format)" for name in sorted(parameters) if name != "format"
    ]
    chosen = parameters.get("format", ReportFormat.MARKDOWN.value)
    if chosen not in {f.value for f in ReportFormat}:
        problems.insert(0, f"format: must be one of {formats}")
    if problems:
        raise ReportRefused(problems)
    return ReportFormat(chosen)


@dataclass(frozen=True)
class Rto:
    """One RTO figure: the time achieved (seconds, to the millisecond), the target, and the verdict."""

    seconds: float | None
    target: int | None
    met: bool | None


def elapsed(start: str, end: str | None) -> float | None:
    """Seconds from `start` to `end` (stored ISO times, millisecond precision), never negative."""
    if not end:
        return None
    milliseconds = round((parse_time(end) - parse_time(start)).total_seconds() * 1000)
    return max(milliseconds, 0) / 1000


def verdict(seconds: float | None, target: int | None, *, recovered: bool | None) -> bool | None:
    """rtoMet: None without a target; False when the thing ended unrecovered (`recovered` False);
    None while it is not over or its time is unknown (`recovered` None, or no time); else whether
    the time is within the target."""
    if target is None:
        return None
    if recovered is False:
        return False
    if recovered is None or seconds is None:
        return None
    return seconds <= target


def server_rto(server: ServerRecord, start: str, target: int | None, wave_over: bool) -> Rto:
    """A server's figure: recovered when it has a `recovered_at`; unrecovered when its wave is
    over without one; unknown until then."""
    seconds = elapsed(start, server.recovered_at)
    recovered = True if seconds is not None else (False if wave_over else None)
    return Rto(seconds, target, verdict(seconds, target, recovered=recovered))


def wave_target(wave: WaveRecord, execution_target: int | None) -> int | None:
    return wave.rto_target_seconds if wave.rto_target_seconds is not None else execution_target


def wave_rto(wave: WaveRecord, start: str, execution_target: int | None) -> Rto:
    """A wave's figure: its latest server's recovery once it is COMPLETED or PARTIAL; met only
    when COMPLETED within its target; not met when it ended otherwise."""
    target = wave_target(wave, execution_target)
    seconds = None
    if wave.status in _RECOVERED_WAVE:
        seconds = latest(elapsed(start, s.recovered_at) for s in wave.servers)
    recovered = None if not wave.is_terminal else wave.status is WaveStatus.COMPLETED
    return Rto(seconds, target, verdict(seconds, target, recovered=recovered))


def execution_rto(status: ExecutionStatus, start: str, target: int | None, waves: Sequence[Rto]) -> Rto:
    """The execution's figure once it is finished (`status` terminal): its latest wave's time;
    met only when COMPLETED within its own target."""
    finished = status in TERMINAL_EXECUTION_STATUSES
    seconds = latest(w.seconds for w in waves) if finished else None
    recovered = None if not finished else status is ExecutionStatus.COMPLETED
    return Rto(seconds, target, verdict(seconds, target, recovered=recovered))


def latest(times: Iterable[float | None]) -> float | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


# ------------------------------------------------------------------ rendering


def launched(servers: Sequence[ServerDocument]) -> int:
    """Servers DRS launched (LAUNCHED, or TERMINATED after it): a wave's progress."""
    return sum(1 for s in servers if s.launch_status in _LAUNCHED)


CSV_COLUMNS = (
    "scope",
    "executionId",
    "waveNumber",
    "name",
    "accountId",
    "region",
    "status",
    "launched",
    "total",
    "sourceServerId",
    "hostname",
    "recoveredInstanceId",
    "instanceType",
    "privateIp",
    "launchTime",
    "startTime",
    "endTime",
    "recoveredAt",
    "rtoSeconds",
    "rtoTargetSeconds",
    "rtoMet",
)
# A cell a spreadsheet would run as a formula (CSV injection) is kept as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _seconds(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _server_row(document: ExecutionDocument, wave: WaveDocument, server: ServerDocument) -> dict[str, object]:
    return {
        "scope": "server",
        "executionId": document.execution_id,
        "waveNumber": wave.wave_number,
        "name": wave.name,
        "accountId": wave.account_id,
        "region": wave.region,
        "status": server.launch_status,
        "sourceServerId": server.source_server_id,
        "hostname": server.hostname,
        "recoveredInstanceId": server.recovered_instance_id,
        "instanceType": server.instance_type,
        "privateIp": server.private_ip,
        "launchTime": server.launch_time,
        "recoveredAt": server.recovered_at,
        "rtoSeconds": server.rto_seconds,
        "rtoTargetSeconds": server.rto_target_seconds,
        "rtoMet": server.rto_met,
    }


def _wave_row(document: ExecutionDocument, wave: WaveDocument) -> dict[str, object]:
    return {
        "scope": "wave",
        "executionId": document.execution_id,
        "waveNumber": wave.wave_number,
        "name": wave.name,
        "accountId": wave.account_id,
        "region": wave.region,
        "status": wave.status,
        "launched": launched(wave.servers),
        "total": len(wave.servers),
        "startTime": wave.start_time,
        "endTime": wave.end_time,
        "rtoSeconds": wave.rto_seconds,
        "rtoTargetSeconds": wave.rto_target_seconds,
        "rtoMet": wave.rto_met,
    }


def _execution_row(document: ExecutionDocument) -> dict[str, object]:
    servers = [s for w in document.waves for s in w.servers]
    return {
        "scope": "execution",
        "executionId": document.execution_id,
        "name": document.name,
        "status": document.status,
        "launched": launched(servers),
        "total": len(servers),
        "startTime": document.created_at,
        "endTime": document.end_time,
        "rtoSeconds": document.rto_seconds,
        "rtoTargetSeconds": document.rto_target_seconds,
        "rtoMet": document.rto_met,
    }


def to_csv(document: ExecutionDocument) -> str:
    """A header row, then per wave one row per server (scope `server`) and the wave's summary
    (scope `wave`), then the execution's (scope `execution`). RFC 4180: CRLF line ends."""
    rows: list[dict[str, object]] = []
    for wave in document.waves:
        rows += [_server_row(document, wave, server) for server in wave.servers]
        rows.append(_wave_row(document, wave))
    rows.append(_execution_row(document))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()


# Backslash-escaped in a cell: what could start markup there (emphasis, code, links, HTML,
# entities) or break the row (`|`); `#`, `-`, `+`, `.` only matter at a line's start.
_MARKDOWN_SPECIAL = frozenset("\\`*_[]<>|~&")


def _md(value: object) -> str:
    """A table cell's text: Markdown's specials escaped (a name is text, never markup or a
    column break); empty as an em dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _seconds(value)
    text = " ".join(str(value).split())
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in text)


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    return lines


def to_markdown(document: ExecutionDocument) -> str:
    """A title, the execution's figure in a sentence, a table with a row per wave and the
    execution's row, then a table of every server."""
    servers = [s for w in document.waves for s in w.servers]
    kind = "drill" if document.is_drill else "recovery"
    if document.rto_seconds is None:
        achieved = "not known yet" if document.rto_met is None else "none: not every wave recovered"
    else:
        achieved = f"{_seconds(document.rto_seconds)} s"
    target = "none set" if document.rto_target_seconds is None else f"{document.rto_target_seconds} s"
    met = {True: "met", False: "not met", None: "—"}[document.rto_met]
    lines = [
        f"# RTO report: {_md(document.name)}",
        "",
        f"Execution `{document.execution_id}` ({kind}), {document.status}. "
        f"Recovery declared {document.created_at}; ended {document.end_time or '—'}.",
        f"RTO achieved: {achieved}; target: {target}; {met}.",
        "",
        *_table(
            (
                "scope",
                "wave",
                "name",
                "account",
                "region",
                "status",
                "launched",
                "rtoSeconds",
                "rtoTargetSeconds",
                "rtoMet",
            ),
            [
                *(
                    (
                        "wave",
                        w.wave_number,
                        w.name,
                        w.account_id,
                        w.region,
                        w.status,
                        f"{launched(w.servers)}/{len(w.servers)}",
                        w.rto_seconds,
                        w.rto_target_seconds,
                        w.rto_met,
                    )
                    for w in document.waves
                ),
                (
                    "execution",
                    "all",
                    document.name,
                    None,
                    None,
                    document.status,
                    f"{launched(servers)}/{len(servers)}",
                    document.rto_seconds,
                    document.rto_target_seconds,
                    document.rto_met,
                ),
            ],
        ),
        "",
        "## Servers",
        "",
        *_table(
            (
                "wave",
                "hostname",
                "sourceServerId",
                "launchStatus",
                "recoveredInstanceId",
                "instanceType",
                "privateIp",
                "launchTime",
                "recoveredAt",
                "rtoSeconds",
                "rtoTargetSeconds",
                "rtoMet",
            ),
            [
                (
                    w.wave_number,
                    s.hostname,
                    s.source_server_id,
                    s.launch_status,
                    s.recovered_instance_id,
                    s.instance_type,
                    s.private_ip,
                    s.launch_time,
                    s.recovered_at,
                    s.rto_seconds,
                    s.rto_target_seconds,
                    s.rto_met,
                )
                for w in document.waves
                for s in w.servers
            ],
        ),
    ]
    return "\n".join(lines) + "\n"


def render(document: ExecutionDocument, report_format: ReportFormat) -> str:
    return to_csv(document) if report_format is ReportFormat.CSV else to_markdown(document)
