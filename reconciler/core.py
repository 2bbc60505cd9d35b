"""The pure heart: `next_state(stored, observed)` and the rules it must never break.

Level-triggered, as in controller-runtime: the event only says *which* wave to look at; the
desired record is computed from what DRS and EC2 show now, merged with what is stored so that a
stale or partial observation can never move anything backwards (I1) or erase data already
recorded (I4). A wave turns COMPLETED or PARTIAL only in the same record that carries every
launched server's EC2 details (I2). No I/O here: the callers read, this decides, the store writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from schemas.records import (
    LAUNCH_TRANSITIONS,
    TERMINAL_WAVE_STATUSES,
    WAVE_TRANSITIONS,
    ExecutionStatus,
    LaunchStatus,
    ServerRecord,
    WaveRecord,
    WaveStatus,
)
from schemas.times import iso_z, normalize_time, parse_time

from .observation import Observation, ObservedJob, ObservedServer

ERROR_MAX = 300
_LAUNCHED = frozenset({LaunchStatus.LAUNCHED, LaunchStatus.TERMINATED})
_LAUNCH_OVER = _LAUNCHED | {LaunchStatus.FAILED}


def _reachable(start: LaunchStatus) -> frozenset[LaunchStatus]:
    seen: set[LaunchStatus] = set()
    todo = [start]
    while todo:
        for nxt in LAUNCH_TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)


_LATER: dict[LaunchStatus, frozenset[LaunchStatus]] = {s: _reachable(s) for s in LaunchStatus}


def later_launch_status(stored: LaunchStatus, observed: str) -> LaunchStatus:
    """The observed status if it lies ahead of the stored one on DRS's graph, else the stored one."""
    try:
        candidate = LaunchStatus(observed)
    except ValueError:
        return stored
    return candidate if candidate in _LATER[stored] else stored


def _merge_server(stored: ServerRecord, seen: ObservedServer | None, now: datetime) -> ServerRecord:
    if seen is None:
        return stored
    ec2 = seen.ec2
    if ec2 is not None and seen.ec2_instance_id and ec2.instance_id != seen.ec2_instance_id:
        ec2 = None
    merged = stored.model_copy(
        update={
            "launch_status": later_launch_status(stored.launch_status, seen.launch_status),
            "recovery_instance_id": seen.recovery_instance_id or stored.recovery_instance_id,
            "recovered_instance_id": seen.ec2_instance_id or stored.recovered_instance_id,
            "instance_type": (ec2.instance_type if ec2 else None) or stored.instance_type,
            "private_ip": (ec2.private_ip if ec2 else None) or seen.fallback_ip or stored.private_ip,
            "launch_time": normalize_time(ec2.launch_time if ec2 else None) or stored.launch_time,
            "ec2_state": (ec2.state if ec2 else None) or stored.ec2_state,
        }
    )
    return _recovered(merged, now)


def _recovered(server: ServerRecord, now: datetime) -> ServerRecord:
    """Stamp `recovered_at` (the RTO report's end of a server's recovery) the first time the
    server is LAUNCHED with all four EC2 details: in the very record, so the very write, that
    makes it complete. `now` is the observation's time (next_state stays pure); a stamp is never
    moved, so a replayed or older observation cannot change it."""
    if server.recovered_at or server.launch_status not in _LAUNCHED or not server.has_ec2_details:
        return server
    return server.model_copy(update={"recovered_at": iso_z(now)})


def _truncate(text: str) -> str:
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"


def _finish_server(server: ServerRecord, in_job: bool, grace: timedelta) -> ServerRecord:
    """Give each server of a wave that is turning terminal its final, explained state."""
    if server.launch_status in _LAUNCHED:
        if server.has_ec2_details:
            return server
        minutes = int(grace.total_seconds() // 60)
        missing = ", ".join(
            name
            for name, value in (
                ("recoveredInstanceId", server.recovered_instance_id),
                ("instanceType", server.instance_type),
                ("privateIp", server.private_ip),
                ("launchTime", server.launch_time),
            )
            if not value
        )
        return server.model_copy(
            update={
                "error": _truncate(
                    f"DRS reports {server.launch_status.value} but EC2 details ({missing}) were still "
                    f"missing {minutes} minutes after the DRS job completed"
                )
            }
        )
    if server.launch_status is LaunchStatus.FAILED:
        return server
    reason = (
        "not part of the DRS job"
        if not in_job
        else f"DRS job completed while the server was {server.launch_status.value}"
    )
    return server.model_copy(update={"launch_status": LaunchStatus.FAILED, "error": _truncate(reason)})


def _terminal_status(servers: Iterable[ServerRecord]) -> WaveStatus:
    servers = list(servers)
    launched = [s for s in servers if s.launch_status in _LAUNCHED]
    if launched and len(launched) == len(servers) and all(s.has_ec2_details for s in launched):
        return WaveStatus.COMPLETED
    return WaveStatus.PARTIAL if launched else WaveStatus.FAILED


def next_state(stored: WaveRecord, observed: Observation, *, ec2_grace: timedelta) -> WaveRecord:
    """The wave record DRS/EC2 truth calls for, never behind `stored`.

    Returns `stored` itself (equal, so the caller skips the write) when the wave is terminal, has
    no job yet, or the observation is of another job or of a job DRS does not know.
    """
    job = observed.job
    if stored.is_terminal or stored.job_id is None or job is None or job.job_id != stored.job_id:
        return stored
    now = observed.observed_at
    servers = tuple(_merge_server(s, job.servers.get(s.source_server_id), now) for s in stored.servers)
    update: dict[str, object] = {
        "servers": servers,
        "status": WaveStatus.LAUNCHING,
        "start_time": stored.start_time or normalize_time(job.creation_time),
        "is_drill": stored.is_drill if job.is_drill is None else job.is_drill,
    }
    # One step at a time along the graph (I1): a PENDING wave first becomes LAUNCHING. Our
    # writers record a job and LAUNCHING together, so this only guards hand-made records.
    if job.status == "COMPLETED" and stored.status is WaveStatus.LAUNCHING:
        job_end = stored.job_end_time or normalize_time(job.end_time) or iso_z(now)
        update["job_end_time"] = job_end
        waiting_for_ec2 = any(s.launch_status in _LAUNCHED and not s.has_ec2_details for s in servers)
        grace_over = now >= parse_time(job_end) + ec2_grace
        if not waiting_for_ec2 or grace_over:
            finished = tuple(_finish_server(s, s.source_server_id in job.servers, ec2_grace) for s in servers)
            update["servers"] = finished
            update["status"] = _terminal_status(finished)
            update["end_time"] = iso_z(now)
    desired = stored.model_copy(update=update)
    return desired if desired != stored else stored


def awaiting_job_end(wave: WaveRecord) -> bool:
    """True when every server's launch is over but the wave is not terminal yet.

    DRS marks the job COMPLETED a little after its last server and sends no event for that, and
    EC2 can take a moment to show a new instance; the reconcile of the last Launch Result event
    keeps looking for a short while instead of leaving the wave to the next sweep.
    """
    return (
        wave.status is WaveStatus.LAUNCHING
        and wave.job_id is not None
        and bool(wave.servers)
        and all(s.launch_status in _LAUNCH_OVER for s in wave.servers)
    )


def resolve_start(
    stored: WaveRecord, found: ObservedJob | None, *, now: datetime, start_grace: timedelta
) -> WaveRecord:
    """A wave whose start was claimed but whose job id never got recorded.

    That happens when StartRecovery's answer was lost (timeout, 5xx) or the writer died between
    StartRecovery and its write. DRS is the truth: adopt the job it holds tagged for this wave.
    With none, nothing changes here: the lifecycle (`Executions.start_wave`, driven by the
    sweep) claims the start again once the claim is older than `start_grace`, or fails the wave
    after its last attempt.
    """
    del start_grace  # the lifecycle owns expired claims (reconciler.lifecycle.claim_is_fresh)
    if stored.is_terminal or stored.job_id is not None or stored.start_requested_at is None:
        return stored
    if found is not None:
        return stored.model_copy(
            update={
                "job_id": found.job_id,
                "status": WaveStatus.LAUNCHING,
                "start_time": normalize_time(found.creation_time) or iso_z(now),
                "start_retry_at": None,
                "start_deferred_since": None,
                "start_problem": None,
            }
        )
    return stored


def complete_before_green_violations(wave: WaveRecord) -> list[str]:
    """I2, checked inside one record: what would make this stored wave a torn, too-green read.

    COMPLETED needs every server LAUNCHED with its four EC2 fields. PARTIAL allows a launched
    server without them only when the server carries an `error` saying why (the 15-minute EC2
    grace ran out); the data is then explicitly absent, never silently.
    """
    problems: list[str] = []
    if wave.status not in (WaveStatus.COMPLETED, WaveStatus.PARTIAL):
        return problems
    for server in wave.servers:
        launched = server.launch_status in _LAUNCHED
        if wave.status is WaveStatus.COMPLETED and not launched:
            problems.append(f"wave {wave.wave_number} COMPLETED with {server.source_server_id} not launched")
        explained = wave.status is WaveStatus.PARTIAL and bool(server.error)
        if launched and not server.has_ec2_details and not explained:
            problems.append(
                f"wave {wave.wave_number} {wave.status.value} but {server.source_server_id} lacks EC2 details"
            )
    return problems


def is_allowed_transition(before: WaveStatus, after: WaveStatus) -> bool:
    """I1: staying put or one declared move forward."""
    return before == after or after in WAVE_TRANSITIONS[before]


def execution_status(waves: Iterable[WaveRecord]) -> ExecutionStatus:
    """An execution's status, derived from its waves only (never stored, so it cannot drift)."""
    waves = list(waves)
    if all(w.status is WaveStatus.PENDING for w in waves):
        return ExecutionStatus.PENDING
    if not all(w.status in TERMINAL_WAVE_STATUSES for w in waves):
        return ExecutionStatus.RUNNING
    if all(w.status is WaveStatus.COMPLETED for w in waves):
        return ExecutionStatus.COMPLETED
    if all(w.status in (WaveStatus.COMPLETED, WaveStatus.CANCELLED) for w in waves):
        return ExecutionStatus.CANCELLED
    if any(s.launch_status in _LAUNCHED for w in waves for s in w.servers):
        return ExecutionStatus.PARTIAL
    return ExecutionStatus.FAILED
