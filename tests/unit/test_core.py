"""Unit tests of the pure core: every status rule, duplicates and stale inputs. No AWS, no mocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core import (
    _LATER,
    ERROR_MAX,
    _reachable,
    _truncate,
    awaiting_job_end,
    complete_before_green_violations,
    execution_status,
    is_allowed_transition,
    later_launch_status,
    next_state,
    resolve_start,
)
from reconciler.observation import Ec2Details, Observation, ObservedJob, ObservedServer
from schemas.records import ExecutionStatus, LaunchStatus, ServerRecord, WaveRecord, WaveStatus
from schemas.times import iso_z

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
GRACE = timedelta(minutes=15)
JOB = "drsjob-AAAAAAAAAAAAAAAAA"
SIDS = [f"s-{i:017d}" for i in range(4)]


def wave(status: WaveStatus = WaveStatus.LAUNCHING, n: int = 2, **servers: ServerRecord) -> WaveRecord:
    records = tuple(
        servers.get(sid, ServerRecord(source_server_id=sid, hostname=f"h{i}"))
        for i, sid in enumerate(SIDS[:n])
    )
    return WaveRecord(
        execution_id="e",
        wave_number=1,
        name="w",
        status=status,
        is_drill=True,
        job_id=JOB,
        servers=records,
        version=3,
        created_at="2026-11-26T09:59:00.000Z",
        updated_at="2026-11-26T09:59:00.000Z",
    )


def ec2(i: int, *, ip: str | None = "10.0.0.1", instance_type: str | None = "m5.large") -> Ec2Details:
    return Ec2Details(f"i-{i:017x}", instance_type, ip, "2026-11-26T10:01:00+00:00", "running")


def launched(
    sid: str, i: int, *, visible: bool = True, fallback_ip: str | None = None, **kw: str | None
) -> ObservedServer:
    return ObservedServer(
        sid, "LAUNCHED", f"i-{i + 100:017x}", f"i-{i:017x}", fallback_ip, ec2(i, **kw) if visible else None
    )


def seen(
    status: str, *servers: ObservedServer, at: datetime = T0, end: str | None = None, job_id: str = JOB
) -> Observation:
    end_time = end if end is not None else ("2026-11-26T10:05:00.000Z" if status == "COMPLETED" else None)
    job = ObservedJob(
        job_id, status, "2026-11-26T09:59:30+00:00", end_time, True, {s.source_server_id: s for s in servers}
    )
    return Observation(job=job, observed_at=at)


def test_a_started_job_makes_a_pending_wave_launching_with_start_time():
    # Given a PENDING wave whose job DRS shows PENDING
    stored = wave(WaveStatus.PENDING)
    # When it is reconciled
    desired = next_state(stored, seen("PENDING", ObservedServer(SIDS[0], "PENDING")), ec2_grace=GRACE)
    # Then it is LAUNCHING and carries the job's creation time, in Z form
    assert desired.status is WaveStatus.LAUNCHING
    assert desired.start_time == "2026-11-26T09:59:30.000Z"
    assert desired.end_time is None


def test_launched_servers_get_their_ec2_details_while_the_job_runs():
    desired = next_state(wave(), seen("STARTED", launched(SIDS[0], 1)), ec2_grace=GRACE)
    server = desired.servers[0]
    assert desired.status is WaveStatus.LAUNCHING
    assert (server.launch_status, server.recovered_instance_id, server.instance_type, server.private_ip) == (
        LaunchStatus.LAUNCHED,
        f"i-{1:017x}",
        "m5.large",
        "10.0.0.1",
    )
    assert server.launch_time == "2026-11-26T10:01:00.000Z"
    assert server.ec2_state == "running"
    assert desired.servers[1] == wave().servers[1]


def test_completed_job_with_every_server_launched_and_visible_completes_the_wave():
    at = T0 + timedelta(minutes=6)
    desired = next_state(
        wave(), seen("COMPLETED", launched(SIDS[0], 1), launched(SIDS[1], 2), at=at), ec2_grace=GRACE
    )
    assert desired.status is WaveStatus.COMPLETED
    assert desired.end_time == "2026-11-26T10:06:00.000Z"
    assert desired.job_end_time == "2026-11-26T10:05:00.000Z"
    assert all(s.has_ec2_details and s.error is None for s in desired.servers)
    assert complete_before_green_violations(desired) == []


def test_completed_job_with_an_invisible_instance_waits_instead_of_going_green():
    # Given DRS says both launched, but EC2 cannot see server 2's instance yet
    observed = seen(
        "COMPLETED", launched(SIDS[0], 1), launched(SIDS[1], 2, visible=False), at=T0 + timedelta(minutes=6)
    )
    desired = next_state(wave(), observed, ec2_grace=GRACE)
    # Then the wave stays in flight: never COMPLETED without the data
    assert desired.status is WaveStatus.LAUNCHING
    assert desired.end_time is None
    assert desired.servers[1].instance_type is None
    # And once EC2 shows it, the same wave completes with the data in the same record
    later = seen("COMPLETED", launched(SIDS[0], 1), launched(SIDS[1], 2), at=T0 + timedelta(minutes=8))
    final = next_state(desired, later, ec2_grace=GRACE)
    assert final.status is WaveStatus.COMPLETED
    assert final.servers[1].instance_type == "m5.large"


def test_missing_ec2_details_after_the_grace_period_end_partial_with_an_error():
    late = datetime(2026, 11, 26, 10, 20, 0, tzinfo=UTC)  # job ended 10:05, grace 15 min
    observed = seen("COMPLETED", launched(SIDS[0], 1), launched(SIDS[1], 2, visible=False), at=late)
    desired = next_state(wave(), observed, ec2_grace=GRACE)
    assert desired.status is WaveStatus.PARTIAL
    assert desired.servers[0].error is None
    assert "instanceType" in (desired.servers[1].error or "") and "15 minutes" in (
        desired.servers[1].error or ""
    )
    assert complete_before_green_violations(desired) == []
    # One second earlier it still waits
    early = seen(
        "COMPLETED", launched(SIDS[0], 1), launched(SIDS[1], 2, visible=False), at=late - timedelta(seconds=1)
    )
    assert next_state(wave(), early, ec2_grace=GRACE).status is WaveStatus.LAUNCHING


def test_some_failed_and_some_launched_is_partial():
    observed = seen("COMPLETED", launched(SIDS[0], 1), ObservedServer(SIDS[1], "FAILED"))
    desired = next_state(wave(), observed, ec2_grace=GRACE)
    assert desired.status is WaveStatus.PARTIAL
    assert desired.servers[1].launch_status is LaunchStatus.FAILED


def test_none_launched_is_failed():
    observed = seen("COMPLETED", ObservedServer(SIDS[0], "FAILED"), ObservedServer(SIDS[1], "FAILED"))
    assert next_state(wave(), observed, ec2_grace=GRACE).status is WaveStatus.FAILED


def test_a_server_not_launched_when_the_job_completes_counts_as_failed_and_says_why():
    observed = seen("COMPLETED", launched(SIDS[0], 1), ObservedServer(SIDS[1], "IN_PROGRESS"))
    desired = next_state(wave(), observed, ec2_grace=GRACE)
    assert desired.status is WaveStatus.PARTIAL
    assert desired.servers[1].launch_status is LaunchStatus.FAILED
    assert "IN_PROGRESS" in (desired.servers[1].error or "")


def test_a_wave_server_missing_from_the_job_counts_as_failed():
    observed = seen("COMPLETED", launched(SIDS[0], 1))
    desired = next_state(wave(), observed, ec2_grace=GRACE)
    assert desired.status is WaveStatus.PARTIAL
    assert desired.servers[1].error == "not part of the DRS job"


def test_missing_ec2_details_error_names_every_missing_field_in_order():
    late = datetime(2026, 11, 26, 10, 20, 0, tzinfo=UTC)  # job ended 10:05, grace 15 min
    observed = seen("COMPLETED", launched(SIDS[0], 1), ObservedServer(SIDS[1], "LAUNCHED"), at=late)
    desired = next_state(wave(), observed, ec2_grace=GRACE)
    assert desired.servers[1].error == (
        "DRS reports LAUNCHED but EC2 details (recoveredInstanceId, instanceType, privateIp, launchTime)"
        " were still missing 15 minutes after the DRS job completed"
    )


def test_an_error_text_is_capped_at_error_max_characters_with_an_ellipsis():
    assert _truncate("x" * ERROR_MAX) == "x" * ERROR_MAX
    assert _truncate("x" * (ERROR_MAX + 1)) == "x" * (ERROR_MAX - 1) + "…"
    assert len(_truncate("y" * 5000)) == ERROR_MAX


def test_a_completed_job_without_an_end_time_ends_when_it_was_observed():
    at = T0 + timedelta(minutes=6)
    job = ObservedJob(JOB, "COMPLETED", "2026-11-26T09:59:30+00:00", None, True, {})
    desired = next_state(wave(), Observation(job=job, observed_at=at), ec2_grace=GRACE)
    assert desired.job_end_time == iso_z(at)


@pytest.mark.parametrize(("job_flag", "recorded"), [(False, False), (True, True), (None, True)])
def test_the_job_drill_flag_wins_and_an_unknown_one_keeps_the_stored_flag(
    job_flag: bool | None, recorded: bool
):
    job = ObservedJob(JOB, "STARTED", "2026-11-26T09:59:30+00:00", None, job_flag, {})
    desired = next_state(wave(), Observation(job=job, observed_at=T0), ec2_grace=GRACE)
    assert desired.is_drill is recorded


def test_the_recovery_instance_id_is_recorded_and_kept_when_a_later_look_lacks_it():
    first = next_state(wave(), seen("STARTED", launched(SIDS[0], 1)), ec2_grace=GRACE)
    assert first.servers[0].recovery_instance_id == f"i-{101:017x}"
    again = next_state(first, seen("STARTED", ObservedServer(SIDS[0], "LAUNCHED")), ec2_grace=GRACE)
    assert again.servers[0].recovery_instance_id == f"i-{101:017x}"


def test_a_job_server_that_is_not_in_the_wave_changes_nothing():
    stranger = launched("s-99999999999999999", 9)
    base = next_state(wave(), seen("STARTED", launched(SIDS[0], 1)), ec2_grace=GRACE)
    assert next_state(wave(), seen("STARTED", launched(SIDS[0], 1), stranger), ec2_grace=GRACE) == base
    assert all(s.source_server_id in SIDS for s in base.servers)


@pytest.mark.parametrize(
    "final", [WaveStatus.COMPLETED, WaveStatus.PARTIAL, WaveStatus.FAILED, WaveStatus.CANCELLED]
)
def test_a_terminal_wave_never_changes_again(final: WaveStatus):
    stored = wave(final)
    observed = seen("COMPLETED", ObservedServer(SIDS[0], "FAILED"), launched(SIDS[1], 2))
    assert next_state(stored, observed, ec2_grace=GRACE) is stored


@pytest.mark.parametrize(
    "observation",
    [
        Observation(job=None, observed_at=T0),
        seen("COMPLETED", launched(SIDS[0], 1), launched(SIDS[1], 2), job_id="drsjob-BBBBBBBBBBBBBBBBB"),
    ],
    ids=["job unknown to DRS", "another job"],
)
def test_observations_of_no_job_or_another_job_change_nothing(observation: Observation):
    stored = wave()
    assert next_state(stored, observation, ec2_grace=GRACE) is stored


def test_a_pending_wave_moves_one_step_even_if_its_job_already_completed():
    observed = seen("COMPLETED", launched(SIDS[0], 1), launched(SIDS[1], 2), at=T0 + timedelta(minutes=6))
    first = next_state(wave(WaveStatus.PENDING), observed, ec2_grace=GRACE)
    assert first.status is WaveStatus.LAUNCHING
    assert next_state(first, observed, ec2_grace=GRACE).status is WaveStatus.COMPLETED


def test_a_wave_without_a_job_is_left_alone():
    stored = wave(WaveStatus.PENDING).model_copy(update={"job_id": None})
    assert next_state(stored, seen("COMPLETED", launched(SIDS[0], 1)), ec2_grace=GRACE) is stored


def test_a_stale_observation_neither_moves_back_nor_erases_details():
    # Given a wave where server 0 is recorded LAUNCHED with its details
    current = next_state(wave(), seen("STARTED", launched(SIDS[0], 1)), ec2_grace=GRACE)
    # When an older view arrives (server still IN_PROGRESS, nothing in EC2)
    stale = next_state(current, seen("STARTED", ObservedServer(SIDS[0], "IN_PROGRESS")), ec2_grace=GRACE)
    # Then nothing changes: same record, so no write
    assert stale == current


def test_duplicate_observation_is_idempotent():
    observed = seen(
        "COMPLETED", launched(SIDS[0], 1), launched(SIDS[1], 2, visible=False), at=T0 + timedelta(minutes=6)
    )
    once = next_state(wave(), observed, ec2_grace=GRACE)
    assert next_state(once, observed, ec2_grace=GRACE) == once


def test_private_ip_falls_back_to_the_recovery_instance_primary_ip():
    observed = seen("STARTED", launched(SIDS[0], 1, ip=None, fallback_ip="10.9.9.9"))
    assert next_state(wave(), observed, ec2_grace=GRACE).servers[0].private_ip == "10.9.9.9"


def test_ec2_details_of_another_instance_are_ignored():
    mismatched = ObservedServer(SIDS[0], "LAUNCHED", "i-rec", "i-00000000000000001", None, ec2(2))
    server = next_state(wave(), seen("STARTED", mismatched), ec2_grace=GRACE).servers[0]
    assert server.recovered_instance_id == "i-00000000000000001"
    assert server.instance_type is None


def test_terminated_after_launched_counts_as_launched_but_launched_after_terminated_is_stale():
    assert later_launch_status(LaunchStatus.LAUNCHED, "TERMINATED") is LaunchStatus.TERMINATED
    assert later_launch_status(LaunchStatus.TERMINATED, "LAUNCHED") is LaunchStatus.TERMINATED
    assert later_launch_status(LaunchStatus.FAILED, "LAUNCHED") is LaunchStatus.FAILED
    assert later_launch_status(LaunchStatus.PENDING, "SOMETHING_NEW") is LaunchStatus.PENDING
    terminated = ObservedServer(SIDS[0], "TERMINATED", "i-r", f"i-{1:017x}", None, ec2(1))
    desired = next_state(wave(n=1), seen("COMPLETED", terminated), ec2_grace=GRACE)
    assert desired.status is WaveStatus.COMPLETED


def test_the_i2_checker_catches_a_torn_wave():
    # A legacy-style write: COMPLETED while a launched server has no EC2 details
    torn = wave(WaveStatus.COMPLETED, n=1).model_copy(
        update={"servers": (ServerRecord(source_server_id=SIDS[0], launch_status=LaunchStatus.LAUNCHED),)}
    )
    assert complete_before_green_violations(torn)
    unexplained = torn.model_copy(update={"status": WaveStatus.PARTIAL})
    assert complete_before_green_violations(unexplained)
    failed_but_green = wave(WaveStatus.COMPLETED, n=1).model_copy(
        update={"servers": (ServerRecord(source_server_id=SIDS[0], launch_status=LaunchStatus.FAILED),)}
    )
    assert complete_before_green_violations(failed_but_green)


def test_the_i2_checker_names_the_wave_and_the_server():
    bare = ServerRecord(source_server_id=SIDS[0], launch_status=LaunchStatus.LAUNCHED)
    torn = wave(WaveStatus.COMPLETED, n=1).model_copy(update={"servers": (bare,)})
    assert complete_before_green_violations(torn) == [f"wave 1 COMPLETED but {SIDS[0]} lacks EC2 details"]
    failed = ServerRecord(source_server_id=SIDS[0], launch_status=LaunchStatus.FAILED)
    failed_but_green = torn.model_copy(update={"servers": (failed,)})
    assert complete_before_green_violations(failed_but_green) == [
        f"wave 1 COMPLETED with {SIDS[0]} not launched"
    ]


def test_execution_status_is_derived_from_waves():
    pending, launching = wave(WaveStatus.PENDING), wave(WaveStatus.LAUNCHING)
    done = next_state(wave(), seen("COMPLETED", launched(SIDS[0], 1), launched(SIDS[1], 2)), ec2_grace=GRACE)
    partial = next_state(
        wave(), seen("COMPLETED", launched(SIDS[0], 1), ObservedServer(SIDS[1], "FAILED")), ec2_grace=GRACE
    )
    failed = next_state(
        wave(),
        seen("COMPLETED", ObservedServer(SIDS[0], "FAILED"), ObservedServer(SIDS[1], "FAILED")),
        ec2_grace=GRACE,
    )
    assert execution_status([pending, pending]) is ExecutionStatus.PENDING
    assert execution_status([launching, pending]) is ExecutionStatus.RUNNING
    assert execution_status([done, pending]) is ExecutionStatus.RUNNING
    assert execution_status([done, done]) is ExecutionStatus.COMPLETED
    assert execution_status([done, partial]) is ExecutionStatus.PARTIAL
    assert execution_status([done, failed]) is ExecutionStatus.PARTIAL
    assert execution_status([failed, failed]) is ExecutionStatus.FAILED
    assert execution_status([failed, wave(WaveStatus.CANCELLED)]) is ExecutionStatus.FAILED


# -- properties: any sequence of observations keeps I1, I2, monotonic servers and no erased data --

LAUNCH_VALUES = ["PENDING", "IN_PROGRESS", "LAUNCHED", "FAILED", "TERMINATED", "BOGUS"]


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    status = draw(st.sampled_from(["PENDING", "STARTED", "COMPLETED"]))
    minutes = draw(st.integers(min_value=0, max_value=40))
    servers = []
    for i, sid in enumerate(SIDS):
        if draw(st.booleans()):
            launch = draw(st.sampled_from(LAUNCH_VALUES))
            has_instance = launch in ("LAUNCHED", "TERMINATED") and draw(st.booleans())
            visible = has_instance and draw(st.booleans())
            details = ec2(
                i,
                ip=draw(st.sampled_from([None, "10.1.1.1"])),
                instance_type=draw(st.sampled_from([None, "t3.micro"])),
            )
            servers.append(
                ObservedServer(
                    sid,
                    launch,
                    f"i-{i + 100:017x}" if has_instance else None,
                    f"i-{i:017x}" if has_instance else None,
                    draw(st.sampled_from([None, "10.2.2.2"])),
                    details if visible else None,
                )
            )
    return seen(status, *servers, at=T0 + timedelta(minutes=minutes))


ORDER = {s: i for i, s in enumerate(LaunchStatus)}


@settings(max_examples=300, deadline=None)
@given(st.lists(observations(), min_size=1, max_size=8))
def test_any_observation_sequence_keeps_the_invariants(sequence: list[Observation]):
    current = wave(WaveStatus.LAUNCHING, n=4)  # the state every writer records with a job
    for observed in sequence:
        desired = next_state(current, observed, ec2_grace=GRACE)
        assert is_allowed_transition(current.status, desired.status), (current.status, desired.status)
        assert complete_before_green_violations(desired) == []
        assert (desired.end_time is not None) == desired.is_terminal
        for before, after in zip(current.servers, desired.servers, strict=True):
            assert after.launch_status == before.launch_status or after.launch_status in _later(
                before.launch_status
            )
            for field in ("recovered_instance_id", "instance_type", "private_ip", "launch_time"):
                if getattr(before, field):
                    assert getattr(after, field), field
        assert next_state(desired, observed, ec2_grace=GRACE) == desired  # I5 at the core
        current = desired


def _later(status: LaunchStatus) -> set[LaunchStatus]:
    return set(_LATER[status])


def test_the_launch_status_closure_matches_the_declared_graph():
    assert _later(LaunchStatus.PENDING) == {
        LaunchStatus.IN_PROGRESS,
        LaunchStatus.LAUNCHED,
        LaunchStatus.FAILED,
        LaunchStatus.TERMINATED,
    }
    assert _later(LaunchStatus.LAUNCHED) == {LaunchStatus.TERMINATED}
    assert _later(LaunchStatus.FAILED) == set()


def test_the_closure_walks_the_graph_transitively_from_each_status():
    """`_LATER` is built at import; this checks the walk that builds it, status by status."""
    assert _reachable(LaunchStatus.PENDING) == {
        LaunchStatus.IN_PROGRESS,
        LaunchStatus.LAUNCHED,
        LaunchStatus.FAILED,
        LaunchStatus.TERMINATED,
    }
    assert _reachable(LaunchStatus.IN_PROGRESS) == {
        LaunchStatus.LAUNCHED,
        LaunchStatus.FAILED,
        LaunchStatus.TERMINATED,
    }
    assert _reachable(LaunchStatus.LAUNCHED) == {LaunchStatus.TERMINATED}
    assert _reachable(LaunchStatus.FAILED) == frozenset()
    assert _reachable(LaunchStatus.TERMINATED) == frozenset()


# -- a start whose job id never got recorded --------------------------------------------------

START_GRACE = timedelta(minutes=5)


def requested(at: str = "2026-11-26T10:00:00.000Z") -> WaveRecord:
    return wave(WaveStatus.PENDING).model_copy(update={"job_id": None, "start_requested_at": at})


def test_a_lost_start_adopts_the_tagged_job_drs_holds():
    found = ObservedJob(JOB, "PENDING", "2026-11-26T10:00:01+00:00")
    desired = resolve_start(requested(), found, now=T0 + timedelta(minutes=1), start_grace=START_GRACE)
    assert (desired.job_id, desired.status, desired.start_time) == (
        JOB,
        WaveStatus.LAUNCHING,
        "2026-11-26T10:00:01.000Z",
    )


def test_a_lost_start_with_no_job_is_left_to_the_lifecycle():
    """No tagged job: the reconcile changes nothing, before or after the grace. Claiming the start
    again (or failing after the last attempt) is `Executions.start_wave`'s, under its claim."""
    stored = requested()
    assert resolve_start(stored, None, now=T0 + timedelta(minutes=4), start_grace=START_GRACE) is stored
    assert resolve_start(stored, None, now=T0 + timedelta(hours=5), start_grace=START_GRACE) is stored


@pytest.mark.parametrize(
    "stored",
    [
        wave(),
        wave(WaveStatus.PENDING).model_copy(update={"job_id": None}),
        requested().model_copy(update={"status": WaveStatus.CANCELLED}),
    ],
    ids=["has a job", "start never requested", "terminal"],
)
def test_resolve_start_leaves_other_waves_alone(stored: WaveRecord):
    found = ObservedJob("drsjob-BBBBBBBBBBBBBBBBB", "STARTED", None)
    assert resolve_start(stored, found, now=T0 + timedelta(hours=1), start_grace=START_GRACE) is stored


def test_a_lost_start_whose_job_has_no_creation_time_starts_now():
    now = T0 + timedelta(minutes=1)
    desired = resolve_start(requested(), ObservedJob(JOB, "PENDING"), now=now, start_grace=START_GRACE)
    assert (desired.job_id, desired.status, desired.start_time) == (JOB, WaveStatus.LAUNCHING, iso_z(now))


def _with(statuses: list[LaunchStatus], *, status: WaveStatus = WaveStatus.LAUNCHING) -> WaveRecord:
    servers = {
        sid: ServerRecord(source_server_id=sid, hostname=f"h{i}", launch_status=launch)
        for i, (sid, launch) in enumerate(zip(SIDS, statuses, strict=False))
    }
    return wave(status, n=len(statuses), **servers)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([LaunchStatus.LAUNCHED, LaunchStatus.LAUNCHED], True),
        ([LaunchStatus.LAUNCHED, LaunchStatus.FAILED], True),
        ([LaunchStatus.TERMINATED, LaunchStatus.FAILED], True),
        ([LaunchStatus.FAILED, LaunchStatus.FAILED], True),
        ([LaunchStatus.LAUNCHED, LaunchStatus.IN_PROGRESS], False),
        ([LaunchStatus.PENDING, LaunchStatus.LAUNCHED], False),
    ],
)
def test_a_launching_wave_awaits_its_job_end_once_every_launch_is_over(statuses, expected):
    assert awaiting_job_end(_with(statuses)) is expected


@pytest.mark.parametrize("status", [s for s in WaveStatus if s is not WaveStatus.LAUNCHING])
def test_only_a_launching_wave_awaits_its_job_end(status):
    assert awaiting_job_end(_with([LaunchStatus.LAUNCHED], status=status)) is False


def test_a_wave_without_a_job_or_servers_awaits_nothing():
    assert awaiting_job_end(_with([LaunchStatus.LAUNCHED]).model_copy(update={"job_id": None})) is False
    assert awaiting_job_end(_with([]).model_copy(update={"servers": ()})) is False
