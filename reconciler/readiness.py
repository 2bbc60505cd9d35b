"""Readiness of a plan before anything is recorded or started: pure, from what DRS answered.

A server that never finished its initial sync has nothing to recover, and one already in an
active job would make DRS refuse the whole StartRecovery (ConflictException): both are errors,
never overridden. Replication that is not CONTINUOUS (stalled, disconnected, lagging, paused...)
would recover an older point in time, and a wave that would exceed the account's DRS quotas
(concurrent jobs, servers across active jobs) would wait: both are warnings, which refuse the
plan unless it names them in `acceptWarnings`. `POST /executions?dryRun=true` returns the same
checks and writes nothing (docs: README "Readiness").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from schemas.api import ReadinessCheck, ReadinessProblem

# Replication states with no consistent point in time to launch from yet.
NEVER_REPLICATED = frozenset({"INITIATING", "INITIAL_SYNC"})
HEALTHY = "CONTINUOUS"
WARNINGS = frozenset({ReadinessCheck.REPLICATION_UNHEALTHY, ReadinessCheck.ACCOUNT_QUOTA})


@dataclass(frozen=True)
class ServerState:
    """What DescribeSourceServers says of one server."""

    hostname: str | None
    replication: str | None


@dataclass(frozen=True)
class AccountLoad:
    """The target's active (not COMPLETED) DRS jobs, from DescribeJobs."""

    active_jobs: int
    busy_servers: frozenset[str]
    servers_in_active_jobs: int


@dataclass(frozen=True)
class Quotas:
    concurrent_jobs: int = 20
    servers_in_active_jobs: int = 500


@dataclass(frozen=True)
class PlannedWave:
    wave_number: int
    account_id: str
    region: str
    source_server_ids: Sequence[str]


def _problem(
    check: ReadinessCheck, wave: PlannedWave, message: str, sid: str | None = None, host: str | None = None
) -> ReadinessProblem:
    return ReadinessProblem(
        level="warning" if check in WARNINGS else "error",
        check=check,
        wave_number=wave.wave_number,
        account_id=wave.account_id,
        region=wave.region,
        source_server_id=sid,
        hostname=host,
        message=message,
    )


def readiness_problems(
    waves: Iterable[PlannedWave],
    servers: Mapping[tuple[str, str, str], ServerState],
    loads: Mapping[tuple[str, str], AccountLoad],
    quotas: Quotas = Quotas(),
) -> list[ReadinessProblem]:
    """Every readiness problem of the plan, wave by wave. `servers` is keyed by (account,
    Region, source server id) and holds only servers DRS knows (unknown ones are the plan
    check's); `loads` by (account, Region)."""
    problems: list[ReadinessProblem] = []
    for wave in waves:
        load = loads.get((wave.account_id, wave.region))
        for sid in wave.source_server_ids:
            state = servers.get((wave.account_id, wave.region, sid))
            if state is None:
                continue
            label = f"{sid} ({state.hostname})" if state.hostname else sid
            if state.replication in NEVER_REPLICATED or state.replication is None:
                problems.append(
                    _problem(
                        ReadinessCheck.NOT_REPLICATED,
                        wave,
                        f"{label}: replication {state.replication or 'unknown'}, no point in time to recover yet",
                        sid,
                        state.hostname,
                    )
                )
            elif state.replication != HEALTHY:
                problems.append(
                    _problem(
                        ReadinessCheck.REPLICATION_UNHEALTHY,
                        wave,
                        f"{label}: replication {state.replication}, not CONTINUOUS (an older point in time would launch)",
                        sid,
                        state.hostname,
                    )
                )
            if load and sid in load.busy_servers:
                problems.append(
                    _problem(
                        ReadinessCheck.IN_ACTIVE_JOB,
                        wave,
                        f"{label}: already in an active DRS job",
                        sid,
                        state.hostname,
                    )
                )
        if load and (
            load.active_jobs >= quotas.concurrent_jobs
            or load.servers_in_active_jobs + len(wave.source_server_ids) > quotas.servers_in_active_jobs
        ):
            problems.append(
                _problem(
                    ReadinessCheck.ACCOUNT_QUOTA,
                    wave,
                    f"account {wave.account_id} ({wave.region}) has {load.active_jobs} active jobs with "
                    f"{load.servers_in_active_jobs} servers; wave {wave.wave_number}'s "
                    f"{len(wave.source_server_ids)} would exceed {quotas.concurrent_jobs} jobs or "
                    f"{quotas.servers_in_active_jobs} servers (it would wait)",
                )
            )
    return problems


def blocking(problems: Iterable[ReadinessProblem], accepted: Iterable[str]) -> list[ReadinessProblem]:
    """The problems that refuse the plan: every error, and each warning the plan did not accept."""
    allowed = set(accepted) & WARNINGS
    return [p for p in problems if p.level == "error" or p.check not in allowed]


def describe(problem: ReadinessProblem) -> str:
    """One line of a 400's problem list."""
    where = f"wave {problem.wave_number}, account {problem.account_id} ({problem.region})"
    hint = f"; accept with acceptWarnings: [{problem.check}]" if problem.level == "warning" else ""
    return f"not ready ({problem.level} {problem.check}, {where}): {problem.message}{hint}"
