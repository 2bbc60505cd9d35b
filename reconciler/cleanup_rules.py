"""The drill clean-up's rules, pure: which instances a wave terminates, and what one look at DRS
and EC2 makes of its clean-up.

A wave's clean-up has its own forward-only graph (`schemas.records.CLEANUP_TRANSITIONS`:
REQUESTED → TERMINATING → TERMINATED, or FAILED saying why) beside the wave's status, which is
terminal before any clean-up and never changes (I1). Like the start protocol, the call DRS makes
is claimed first (a versioned write); afterwards `next_cleanup` decides from a look (DRS's
recovery instances, its TERMINATE jobs, EC2's instance states): a TERMINATE job DRS holds for the
wave's instances is adopted, whatever answer was lost; EC2's `terminated` ends it; and only once
the claim is older than the grace, with instances still running and no TERMINATE job under way,
is TerminateRecoveryInstances asked again (at most CLEANUP_MAX_ATTEMPTS claims, then FAILED).
No I/O here: reconciler/cleanup.py reads, this decides, the store writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.records import (
    CLEANUP_TRANSITIONS,
    CleanupStatus,
    LaunchStatus,
    ServerRecord,
    WaveRecord,
)
from schemas.times import iso_z, parse_time

CLEANUP_MAX_ATTEMPTS = 3
TERMINATE_MAX_IDS = 200  # TerminateRecoveryInstances takes at most 200 recovery instance ids
EC2_TERMINATED = "terminated"
# EC2 states (lower case, DescribeInstances) and DRS's ec2InstanceState (upper case) of an
# instance on its way out: nothing more to ask of DRS for it.
_EC2_GOING = frozenset({"shutting-down", EC2_TERMINATED})
_DRS_GONE = frozenset({"TERMINATED", "NOT_FOUND"})
_DRS_GOING = _DRS_GONE | {"SHUTTING-DOWN"}
ERROR_MAX = 300


@dataclass(frozen=True)
class CleanupLook:
    """One look at a wave's clean-up. `drs_states`: recovery instance id → DRS's
    ec2InstanceState (an id DRS no longer lists is absent); `ec2_states`: EC2 instance id →
    State.Name (an instance EC2 no longer shows is absent); `jobs`: TERMINATE job id → status,
    for the wave's recorded jobs and any job DRS holds for its instances since the claim."""

    drs_states: Mapping[str, str]
    ec2_states: Mapping[str, str]
    jobs: Mapping[str, str]
    observed_at: datetime


def cleanup_targets(wave: WaveRecord) -> list[ServerRecord]:
    """The wave's servers whose recovery instances a clean-up terminates: the LAUNCHED ones (a
    server that never launched has no instance; one TERMINATED already is gone)."""
    return [s for s in wave.servers if s.launch_status is LaunchStatus.LAUNCHED and s.recovery_instance_id]


def needs_cleanup(wave: WaveRecord) -> bool:
    """A terminal wave never cleaned up that has recovery instances to terminate."""
    return wave.is_terminal and wave.cleanup_status is None and bool(cleanup_targets(wave))


def claimed(wave: WaveRecord, now: str) -> WaveRecord:
    """The claim: the moment and the attempt, REQUESTED the first time (a later claim keeps the
    status it has: the graph only moves forward)."""
    return wave.model_copy(
        update={
            "cleanup_status": wave.cleanup_status or CleanupStatus.REQUESTED,
            "cleanup_requested_at": now,
            "cleanup_attempts": wave.cleanup_attempts + 1,
            "cleanup_error": None,
        }
    )


def later_cleanup_status(stored: CleanupStatus | None, wanted: CleanupStatus) -> CleanupStatus:
    """`wanted` if it lies ahead of `stored` on the clean-up graph (or is `stored`), else `stored`."""
    if stored is None or wanted == stored:
        return wanted
    seen: set[CleanupStatus] = set()
    todo = [stored]
    while todo:
        for nxt in CLEANUP_TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return wanted if wanted in seen else stored


def with_jobs(wave: WaveRecord, job_ids: Iterable[str]) -> WaveRecord:
    """TerminateRecoveryInstances answered with these jobs: recorded, TERMINATING (never back)."""
    jobs = tuple(dict.fromkeys((*wave.cleanup_job_ids, *job_ids)))
    if not wave.cleanup_is_open or not jobs:
        return wave
    return wave.model_copy(
        update={
            "cleanup_job_ids": jobs,
            "cleanup_status": later_cleanup_status(wave.cleanup_status, CleanupStatus.TERMINATING),
            "cleanup_error": None,
        }
    )


def failed(wave: WaveRecord, reason: str, now: str) -> WaveRecord:
    if not wave.cleanup_is_open:
        return wave
    text = reason if len(reason) <= ERROR_MAX else reason[: ERROR_MAX - 1] + "…"
    return wave.model_copy(
        update={"cleanup_status": CleanupStatus.FAILED, "cleanup_error": text, "cleanup_end_time": now}
    )


def _ec2_state(server: ServerRecord, look: CleanupLook) -> str | None:
    """The server's EC2 state after the look: EC2's own word; an instance neither EC2 nor DRS
    shows any more (or DRS calls TERMINATED or NOT_FOUND) is terminated; `terminated` is final."""
    if server.ec2_state == EC2_TERMINATED:
        return EC2_TERMINATED
    seen = look.ec2_states.get(server.recovered_instance_id or "")
    if seen:
        return seen
    drs = look.drs_states.get(server.recovery_instance_id or "")
    if drs is None or drs in _DRS_GONE:
        return EC2_TERMINATED
    return server.ec2_state


def still_running(wave: WaveRecord, look: CleanupLook) -> list[ServerRecord]:
    """Target servers whose instance is not on its way out, by EC2's word and DRS's."""
    return [
        s
        for s in cleanup_targets(wave)
        if (look.ec2_states.get(s.recovered_instance_id or "") or s.ec2_state) not in _EC2_GOING
        and look.drs_states.get(s.recovery_instance_id or "") not in (*_DRS_GOING, None)
    ]


def claim_is_fresh(wave: WaveRecord, now: datetime, grace: timedelta) -> bool:
    """A claim younger than the grace may still be asking DRS: nobody else asks."""
    return wave.cleanup_requested_at is not None and now < parse_time(wave.cleanup_requested_at) + grace


def next_cleanup(stored: WaveRecord, look: CleanupLook, *, grace: timedelta) -> tuple[WaveRecord, bool]:
    """The wave's clean-up as the look shows it, never behind `stored`; and whether
    TerminateRecoveryInstances must be asked again (the caller claims first). See the module
    docstring for the rules."""
    if not stored.cleanup_is_open:
        return stored, False
    targets = {s.source_server_id for s in cleanup_targets(stored)}
    servers = tuple(
        s.model_copy(update={"ec2_state": _ec2_state(s, look)}) if s.source_server_id in targets else s
        for s in stored.servers
    )
    wave = with_jobs(stored.model_copy(update={"servers": servers}), look.jobs)
    now = iso_z(look.observed_at)
    if all(s.ec2_state == EC2_TERMINATED for s in cleanup_targets(wave)):
        done = wave.model_copy(
            update={
                "cleanup_status": CleanupStatus.TERMINATED,
                "cleanup_end_time": wave.cleanup_end_time or now,
                "cleanup_error": None,
            }
        )
        return done, False
    running = still_running(wave, look)
    under_way = any(status != "COMPLETED" for status in look.jobs.values())
    if not running or under_way or claim_is_fresh(wave, look.observed_at, grace):
        return wave, False
    names = ", ".join(sorted(s.recovered_instance_id or s.source_server_id for s in running))
    if wave.cleanup_attempts >= CLEANUP_MAX_ATTEMPTS:
        reason = (
            f"still running after {wave.cleanup_attempts} TerminateRecoveryInstances attempts "
            f"(last at {wave.cleanup_requested_at}): {names}"
        )
        return failed(wave, reason, now), False
    return wave, True


def to_terminate(wave: WaveRecord, look: CleanupLook | None = None) -> list[str]:
    """The recovery instance ids to ask DRS to terminate: every target's, or (after a look) only
    those still running."""
    servers = cleanup_targets(wave) if look is None else still_running(wave, look)
    return [s.recovery_instance_id for s in servers if s.recovery_instance_id]


def chunked(ids: Sequence[str], size: int = TERMINATE_MAX_IDS) -> list[list[str]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def execution_cleanup_status(waves: Iterable[WaveRecord]) -> str | None:
    """The execution's clean-up across its waves: None when never asked; FAILED if any wave's
    failed; TERMINATED once every asked wave's is; else the least advanced open one."""
    statuses = [w.cleanup_status for w in waves if w.cleanup_status is not None]
    if not statuses:
        return None
    for status in (CleanupStatus.FAILED, CleanupStatus.REQUESTED, CleanupStatus.TERMINATING):
        if status in statuses:
            return status.value
    return CleanupStatus.TERMINATED.value
