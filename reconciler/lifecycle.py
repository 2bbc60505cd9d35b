"""The execution's lifecycle, pure: what its status is and what must happen next.

An execution is a plan of ordered waves plus an operator's controls (pause before a wave,
resume, cancel) and a failure policy (`stopOnPartial`). `plan_next` looks at the stored execution
and waves and names the one next step — start a wave, pause, cancel the waves that will never
run, finish — or nothing, while a wave is in flight. Every caller (the reconcile handler after a
wave turns terminal, the sweep, resume, cancel) runs the same decision, so whichever gets there
first acts and the others find nothing to do. Our own events (`Wave Completed`, `Execution
Completed`) are built here too, with ids derived from the transition so a duplicate delivery
carries the same id. No I/O: the callers read, this decides, the store writes.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas.records import (
    ExecutionRecord,
    ExecutionStatus,
    LaunchStatus,
    OutboxEvent,
    WaveRecord,
    WaveStatus,
)
from schemas.times import parse_time

from .core import execution_status

EVENT_SOURCE = "drs-reconciler"
WAVE_COMPLETED = "Wave Completed"
EXECUTION_COMPLETED = "Execution Completed"
MAX_START_ATTEMPTS = 3
# A pending event older than this was left by a writer that died before publishing it: anyone may
# publish it now. Younger ones are left to their writer, so duplicates stay rare.
OUTBOX_GRACE = timedelta(seconds=60)
_STOPPING = frozenset({WaveStatus.PARTIAL, WaveStatus.FAILED})


class Action(enum.StrEnum):
    NONE = "none"
    START = "start"
    PAUSE = "pause"
    CANCEL_REST = "cancel_rest"
    FINISH = "finish"


@dataclass(frozen=True)
class Step:
    action: Action
    wave_number: int | None = None
    reason: str | None = None
    status: ExecutionStatus | None = None


def derive_status(execution: ExecutionRecord, waves: list[WaveRecord]) -> ExecutionStatus:
    """The execution's status from its waves and controls (what GET shows)."""
    if execution.status is not None and execution.is_finished:
        return execution.status
    if waves and all(w.is_terminal for w in waves):
        if execution.cancel_requested_at is not None:
            return ExecutionStatus.CANCELLED
        return execution_status(waves)
    if execution.paused_before is not None and execution.cancel_requested_at is None:
        return ExecutionStatus.PAUSED
    return execution_status(waves)


def listed_status(execution: ExecutionRecord) -> ExecutionStatus:
    """The status the execution is listed under (`GET /executions`), from its own item only:
    its final status once finished, PAUSED while it waits for an operator, RUNNING otherwise
    (PENDING included). The store writes it on every write of the execution's item."""
    if execution.status is not None and execution.is_finished:
        return execution.status
    if execution.paused_before is not None and execution.cancel_requested_at is None:
        return ExecutionStatus.PAUSED
    return ExecutionStatus.RUNNING


def outbox_is_orphaned(updated_at: str, now: datetime) -> bool:
    """An item's pending events were written long enough ago that their writer is gone."""
    return now >= parse_time(updated_at) + OUTBOX_GRACE


def start_is_deferred(wave: WaveRecord) -> bool:
    """DRS refused this wave's last start for a passing reason: nothing was started, nothing is
    under way, and the start is tried again from `start_retry_at` on."""
    return wave.start_retry_at is not None


def claim_is_fresh(wave: WaveRecord, now: datetime, start_grace: timedelta) -> bool:
    """A start claimed less than `start_grace` ago may still be under way: never start again.
    A deferred start is under way nowhere (DRS proved it started nothing)."""
    return (
        wave.start_requested_at is not None
        and not start_is_deferred(wave)
        and now < parse_time(wave.start_requested_at) + start_grace
    )


def never_started(wave: WaveRecord) -> bool:
    """A PENDING wave no DRS job can exist for: never claimed, or its start deferred."""
    return (
        wave.status is WaveStatus.PENDING
        and wave.job_id is None
        and (wave.start_requested_at is None or start_is_deferred(wave))
    )


def plan_next(
    execution: ExecutionRecord, waves: list[WaveRecord], *, now: datetime, start_grace: timedelta
) -> Step:
    """The one next step for this execution (see the module docstring)."""
    if execution.is_finished:
        return Step(Action.NONE)
    ordered = sorted(waves, key=lambda w: w.wave_number)
    for wave in ordered:
        if wave.is_terminal:
            continue
        if wave.job_id is not None or wave.status is not WaveStatus.PENDING:
            return Step(Action.NONE, wave.wave_number, "in flight")
        claimed = wave.start_requested_at is not None
        if execution.cancel_requested_at is not None:
            if claimed and claim_is_fresh(wave, now, start_grace):
                return Step(Action.NONE, wave.wave_number, "start under way; cancelled after it")
            return Step(Action.CANCEL_REST, wave.wave_number, "cancelled by an operator")
        stopped = [w for w in ordered if w.wave_number < wave.wave_number and w.status in _STOPPING]
        if execution.stop_on_partial and stopped and not claimed:
            first = stopped[0]
            reason = f"not started: wave {first.wave_number} ended {first.status.value} (stopOnPartial)"
            return Step(Action.CANCEL_REST, wave.wave_number, reason)
        if claimed:
            if start_is_deferred(wave):
                assert wave.start_retry_at is not None
                if now < parse_time(wave.start_retry_at):
                    return Step(Action.NONE, wave.wave_number, f"start deferred: {wave.start_problem}")
                return Step(Action.START, wave.wave_number, "deferred start due")
            if claim_is_fresh(wave, now, start_grace):
                return Step(Action.NONE, wave.wave_number, "start under way")
            return Step(Action.START, wave.wave_number, "start claim expired")
        if wave.pause_before_wave and wave.wave_number not in execution.resumed:
            if execution.paused_before == wave.wave_number:
                return Step(Action.NONE, wave.wave_number, "paused")
            return Step(Action.PAUSE, wave.wave_number, "pauseBeforeWave")
        return Step(Action.START, wave.wave_number)
    return Step(Action.FINISH, status=derive_status(execution, ordered))


# ------------------------------------------------------------------ our own events


def stable_event_id(*parts: object) -> str:
    """A UUID-shaped id derived from the transition, the same on every delivery of it."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def _counts(waves: list[WaveRecord]) -> dict[str, int]:
    servers = [s for w in waves for s in w.servers]
    launched = sum(1 for s in servers if s.launch_status in (LaunchStatus.LAUNCHED, LaunchStatus.TERMINATED))
    failed = sum(1 for s in servers if s.launch_status is LaunchStatus.FAILED)
    return {"servers": len(servers), "launched": launched, "failed": failed}


def wave_completed_event(wave: WaveRecord) -> OutboxEvent:
    detail: dict[str, Any] = {
        "executionId": wave.execution_id,
        "waveNumber": wave.wave_number,
        "name": wave.name,
        "status": wave.status.value,
        "isDrill": wave.is_drill,
        "jobId": wave.job_id,
        "startTime": wave.start_time,
        "endTime": wave.end_time,
        "counts": _counts([wave]),
    }
    event_id = stable_event_id(WAVE_COMPLETED, wave.execution_id, wave.wave_number, wave.status.value)
    return OutboxEvent(event_id=event_id, detail_type=WAVE_COMPLETED, detail={"eventId": event_id, **detail})


def execution_completed_event(
    execution: ExecutionRecord, waves: list[WaveRecord], status: ExecutionStatus, end_time: str
) -> OutboxEvent:
    detail: dict[str, Any] = {
        "executionId": execution.execution_id,
        "name": execution.name,
        "status": status.value,
        "isDrill": execution.is_drill,
        "endTime": end_time,
        "waves": len(waves),
        "counts": _counts(waves),
    }
    event_id = stable_event_id(EXECUTION_COMPLETED, execution.execution_id, status.value)
    return OutboxEvent(
        event_id=event_id, detail_type=EXECUTION_COMPLETED, detail={"eventId": event_id, **detail}
    )


def with_wave_event(wave: WaveRecord) -> WaveRecord:
    """A wave turning terminal carries its Wave Completed event in the same write (outbox)."""
    if not wave.is_terminal or wave.announced or any(e.detail_type == WAVE_COMPLETED for e in wave.outbox):
        return wave
    return wave.model_copy(update={"outbox": (*wave.outbox, wave_completed_event(wave))})


def expiry(end_time: str, retention: timedelta) -> int:
    """The DynamoDB TTL (epoch seconds) of an execution's items once it is finished."""
    return int((parse_time(end_time) + retention).timestamp())
