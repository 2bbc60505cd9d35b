"""Unit tests of the pure lifecycle: `plan_next` in every branch, the derived execution status,
start claims, and our own events. No AWS, no mocks: records in, decisions out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.lifecycle import (
    EXECUTION_COMPLETED,
    MAX_START_ATTEMPTS,
    OUTBOX_GRACE,
    WAVE_COMPLETED,
    Action,
    Step,
    claim_is_fresh,
    derive_status,
    execution_completed_event,
    expiry,
    outbox_is_orphaned,
    plan_next,
    stable_event_id,
    wave_completed_event,
    with_wave_event,
)
from schemas.records import (
    TERMINAL_WAVE_STATUSES,
    ExecutionRecord,
    ExecutionStatus,
    LaunchStatus,
    OutboxEvent,
    ServerRecord,
    WaveRecord,
    WaveStatus,
)
from schemas.times import iso_z

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)
EXEC_ID = "3f1c7a52-9b7e-4c1e-8d2a-0a4b5c6d7e8f"
STAMP = "2026-11-26T09:00:00.000Z"
P, L, C, PA, F, X = (
    WaveStatus.PENDING,
    WaveStatus.LAUNCHING,
    WaveStatus.COMPLETED,
    WaveStatus.PARTIAL,
    WaveStatus.FAILED,
    WaveStatus.CANCELLED,
)


def ago(minutes: float) -> str:
    return iso_z(NOW - timedelta(minutes=minutes))


def execution(**changes: object) -> ExecutionRecord:
    base = ExecutionRecord(
        execution_id=EXEC_ID,
        name="drill",
        is_drill=True,
        wave_count=3,
        version=1,
        created_at=STAMP,
        updated_at=STAMP,
    )
    return base.model_copy(update=changes)


def server(i: int, status: LaunchStatus = LaunchStatus.PENDING) -> ServerRecord:
    launched = status in (LaunchStatus.LAUNCHED, LaunchStatus.TERMINATED)
    return ServerRecord(
        source_server_id=f"s-{i:017d}",
        hostname=f"h{i}",
        launch_status=status,
        recovered_instance_id=f"i-{i:017x}" if launched else None,
        instance_type="m5.large" if launched else None,
        private_ip="10.0.0.1" if launched else None,
        launch_time=STAMP if launched else None,
    )


def wave(number: int, status: WaveStatus = P, **changes: object) -> WaveRecord:
    """A wave as the store would hold it: a job once it left PENDING (unless CANCELLED or FAILED
    without one), its servers launched when COMPLETED."""
    has_job = status in (L, C, PA)
    servers = (
        (server(1, LaunchStatus.LAUNCHED), server(2, LaunchStatus.LAUNCHED))
        if status is C
        else (server(1, LaunchStatus.LAUNCHED), server(2, LaunchStatus.FAILED))
        if status is PA
        else (server(1), server(2))
    )
    base = WaveRecord(
        execution_id=EXEC_ID,
        wave_number=number,
        name=f"wave {number}",
        status=status,
        is_drill=True,
        job_id=f"drsjob-{number:017d}" if has_job else None,
        start_time=STAMP if has_job else None,
        end_time=STAMP if status in TERMINAL_WAVE_STATUSES else None,
        servers=servers,
        version=2,
        created_at=STAMP,
        updated_at=STAMP,
    )
    return base.model_copy(update=changes)


def plan(ex: ExecutionRecord, waves: list[WaveRecord]) -> Step:
    return plan_next(ex, waves, now=NOW, start_grace=GRACE)


# ------------------------------------------------------------------ plan_next: every branch


def test_the_first_wave_of_a_new_execution_starts():
    assert plan(execution(), [wave(1), wave(2), wave(3)]) == Step(Action.START, 1)


@pytest.mark.parametrize(
    "current",
    [wave(2, L), wave(2, P, job_id="drsjob-00000000000000002")],
    ids=["launching", "pending with a job recorded"],
)
def test_a_wave_in_flight_means_nothing_to_do(current: WaveRecord):
    step = plan(execution(), [wave(1, C), current, wave(3)])
    assert step == Step(Action.NONE, 2, "in flight")


def test_the_next_wave_starts_when_the_one_before_completed():
    assert plan(execution(), [wave(1, C), wave(2, C), wave(3)]) == Step(Action.START, 3)


def test_waves_are_taken_in_order_whatever_the_list_order():
    assert plan(execution(), [wave(3), wave(1, C), wave(2)]) == Step(Action.START, 2)


def test_a_fresh_claim_is_left_to_its_claimer():
    claimed = wave(2, start_requested_at=ago(4.9), start_attempts=1)
    assert plan(execution(), [wave(1, C), claimed, wave(3)]) == Step(Action.NONE, 2, "start under way")


@pytest.mark.parametrize("minutes", [5, 6, 60])
def test_an_expired_claim_is_started_again(minutes: float):
    claimed = wave(2, start_requested_at=ago(minutes), start_attempts=1)
    assert plan(execution(), [wave(1, C), claimed, wave(3)]) == Step(Action.START, 2, "start claim expired")


def test_an_expired_claim_is_resolved_even_after_its_last_attempt():
    # start_wave decides between adopting a tagged job and FAILED; plan_next only hands it over
    claimed = wave(2, start_requested_at=ago(10), start_attempts=MAX_START_ATTEMPTS)
    assert plan(execution(), [wave(1, C), claimed, wave(3)]).action is Action.START


# -- cancel


def test_cancel_cancels_the_waves_that_never_started():
    ex = execution(cancel_requested_at=ago(1))
    step = plan(ex, [wave(1, C), wave(2), wave(3)])
    assert step == Step(Action.CANCEL_REST, 2, "cancelled by an operator")


def test_cancel_with_a_fresh_claim_waits_for_the_start_under_way():
    ex = execution(cancel_requested_at=ago(1))
    claimed = wave(2, start_requested_at=ago(2), start_attempts=1)
    step = plan(ex, [wave(1, C), claimed, wave(3, X)])
    assert step == Step(Action.NONE, 2, "start under way; cancelled after it")


def test_cancel_with_a_stale_claim_cancels_it():
    ex = execution(cancel_requested_at=ago(1))
    claimed = wave(2, start_requested_at=ago(6), start_attempts=1)
    assert plan(ex, [wave(1, C), claimed, wave(3, X)]) == Step(
        Action.CANCEL_REST, 2, "cancelled by an operator"
    )


def test_cancel_leaves_a_running_wave_to_its_end():
    ex = execution(cancel_requested_at=ago(1))
    assert plan(ex, [wave(1, L), wave(2, X), wave(3, X)]) == Step(Action.NONE, 1, "in flight")


def test_cancel_beats_a_pause():
    ex = execution(cancel_requested_at=ago(1))
    paused = wave(2, pause_before_wave=True)
    assert plan(ex, [wave(1, C), paused, wave(3)]).action is Action.CANCEL_REST


# -- stopOnPartial


@pytest.mark.parametrize("ended", [PA, F])
def test_stop_on_partial_cancels_the_rest_after_a_partial_or_failed_wave(ended: WaveStatus):
    step = plan(execution(stop_on_partial=True), [wave(1, ended), wave(2), wave(3)])
    assert step.action is Action.CANCEL_REST
    assert step.wave_number == 2
    assert step.reason == f"not started: wave 1 ended {ended.value} (stopOnPartial)"


def test_stop_on_partial_names_the_first_wave_that_stopped_it():
    ex = execution(stop_on_partial=True, wave_count=4)
    step = plan(ex, [wave(1, C), wave(2, F), wave(3, PA), wave(4)])
    assert step.action is Action.CANCEL_REST and step.wave_number == 4
    assert step.reason is not None and "wave 2 ended FAILED" in step.reason


@pytest.mark.parametrize("ended", [PA, F])
def test_without_stop_on_partial_the_next_wave_starts(ended: WaveStatus):
    assert plan(execution(stop_on_partial=False), [wave(1, ended), wave(2), wave(3)]) == Step(Action.START, 2)


def test_a_cancelled_wave_does_not_stop_the_execution_by_itself():
    # CANCELLED is not PARTIAL/FAILED: only the operator's cancel or stopOnPartial produce it
    assert plan(execution(), [wave(1, C), wave(2, X), wave(3)]) == Step(Action.START, 3)


def test_stop_on_partial_beats_a_pause():
    step = plan(execution(), [wave(1, PA), wave(2, pause_before_wave=True), wave(3)])
    assert step.action is Action.CANCEL_REST


# -- pause and resume


def test_a_wave_marked_pause_before_wave_pauses_the_execution():
    step = plan(execution(), [wave(1, C), wave(2, pause_before_wave=True), wave(3)])
    assert step == Step(Action.PAUSE, 2, "pauseBeforeWave")


def test_pause_before_the_first_wave():
    assert plan(execution(), [wave(1, pause_before_wave=True), wave(2)]).action is Action.PAUSE


def test_an_execution_already_paused_there_waits():
    step = plan(execution(paused_before=2), [wave(1, C), wave(2, pause_before_wave=True), wave(3)])
    assert step == Step(Action.NONE, 2, "paused")


def test_a_resumed_wave_starts():
    step = plan(execution(resumed=(2,)), [wave(1, C), wave(2, pause_before_wave=True), wave(3)])
    assert step == Step(Action.START, 2)


def test_resuming_one_wave_does_not_release_a_later_pause():
    ex = execution(resumed=(2,))
    waves = [wave(1, C), wave(2, C, pause_before_wave=True), wave(3, pause_before_wave=True)]
    assert plan(ex, waves) == Step(Action.PAUSE, 3, "pauseBeforeWave")


def test_a_wave_without_pause_is_not_held_by_an_old_pause_of_another_wave():
    assert plan(execution(paused_before=2, resumed=(2,)), [wave(1, C), wave(2, C), wave(3)]).action is (
        Action.START
    )


# -- finish


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((C, C, C), ExecutionStatus.COMPLETED),
        ((C, PA, C), ExecutionStatus.PARTIAL),
        ((PA, X, X), ExecutionStatus.PARTIAL),
        ((F, X, X), ExecutionStatus.FAILED),
        ((F, F, F), ExecutionStatus.FAILED),
    ],
)
def test_when_every_wave_is_terminal_the_execution_finishes(
    statuses: tuple[WaveStatus, ...], expected: ExecutionStatus
):
    waves = [wave(n, s) for n, s in enumerate(statuses, start=1)]
    assert plan(execution(), waves) == Step(Action.FINISH, status=expected)


@pytest.mark.parametrize("statuses", [(C, X, X), (C, C, C), (PA, X, X), (F, X, X)])
def test_a_cancelled_execution_finishes_cancelled(statuses: tuple[WaveStatus, ...]):
    waves = [wave(n, s) for n, s in enumerate(statuses, start=1)]
    step = plan(execution(cancel_requested_at=ago(1)), waves)
    assert step == Step(Action.FINISH, status=ExecutionStatus.CANCELLED)


@pytest.mark.parametrize("status", [ExecutionStatus.COMPLETED, ExecutionStatus.CANCELLED])
def test_a_finished_execution_has_nothing_to_do(status: ExecutionStatus):
    ex = execution(status=status, end_time=STAMP)
    assert plan(ex, [wave(1, C), wave(2, C), wave(3, C)]) == Step(Action.NONE)
    # even if its records looked unfinished, a finished execution never starts anything again
    assert plan(ex, [wave(1, C), wave(2), wave(3)]) == Step(Action.NONE)


# ------------------------------------------------------------------ derive_status


def test_derive_status_pending_running_and_terminal():
    assert derive_status(execution(), [wave(1), wave(2)]) is ExecutionStatus.PENDING
    assert derive_status(execution(), [wave(1, L), wave(2)]) is ExecutionStatus.RUNNING
    assert derive_status(execution(), [wave(1, C), wave(2)]) is ExecutionStatus.RUNNING
    assert derive_status(execution(), [wave(1, C), wave(2, C)]) is ExecutionStatus.COMPLETED
    assert derive_status(execution(), [wave(1, C), wave(2, PA)]) is ExecutionStatus.PARTIAL


def test_derive_status_paused():
    assert derive_status(execution(paused_before=2), [wave(1, C), wave(2)]) is ExecutionStatus.PAUSED
    assert derive_status(execution(paused_before=1), [wave(1), wave(2)]) is ExecutionStatus.PAUSED


def test_a_cancel_request_hides_a_pause():
    ex = execution(paused_before=2, cancel_requested_at=ago(1))
    assert derive_status(ex, [wave(1, C), wave(2)]) is ExecutionStatus.RUNNING


def test_derive_status_cancelled_only_once_every_wave_is_terminal():
    ex = execution(cancel_requested_at=ago(1))
    assert derive_status(ex, [wave(1, L), wave(2, X)]) is ExecutionStatus.RUNNING
    assert derive_status(ex, [wave(1, C), wave(2, X)]) is ExecutionStatus.CANCELLED
    assert derive_status(ex, [wave(1, PA), wave(2, X)]) is ExecutionStatus.CANCELLED
    assert derive_status(ex, [wave(1, C), wave(2, C)]) is ExecutionStatus.CANCELLED


def test_derive_status_returns_the_stored_final_status():
    ex = execution(status=ExecutionStatus.PARTIAL, end_time=STAMP)
    assert derive_status(ex, [wave(1, C), wave(2, C)]) is ExecutionStatus.PARTIAL
    ex = execution(status=ExecutionStatus.CANCELLED, end_time=STAMP, paused_before=2)
    assert derive_status(ex, [wave(1, C), wave(2)]) is ExecutionStatus.CANCELLED


def test_a_stored_status_that_is_not_final_is_ignored_for_the_one_derived_from_waves():
    ex = execution(status=ExecutionStatus.RUNNING)
    assert derive_status(ex, [wave(1, C), wave(2, C)]) is ExecutionStatus.COMPLETED


# ------------------------------------------------------------------ claim_is_fresh


def test_claim_is_fresh():
    assert not claim_is_fresh(wave(2), NOW, GRACE)
    assert claim_is_fresh(wave(2, start_requested_at=ago(0)), NOW, GRACE)
    assert claim_is_fresh(wave(2, start_requested_at=ago(4.99)), NOW, GRACE)
    assert not claim_is_fresh(wave(2, start_requested_at=ago(5)), NOW, GRACE)  # the grace is exclusive
    assert not claim_is_fresh(wave(2, start_requested_at=ago(30)), NOW, GRACE)
    assert claim_is_fresh(wave(2, start_requested_at=ago(30)), NOW, timedelta(hours=1))


def test_claim_freshness_reads_any_iso_form():
    assert claim_is_fresh(wave(2, start_requested_at="2026-11-26T09:58:00+00:00"), NOW, GRACE)


def test_pending_events_are_orphaned_once_the_outbox_grace_has_passed():
    assert not outbox_is_orphaned(iso_z(NOW), NOW)
    assert not outbox_is_orphaned(iso_z(NOW - OUTBOX_GRACE + timedelta(seconds=1)), NOW)
    assert outbox_is_orphaned(iso_z(NOW - OUTBOX_GRACE), NOW)  # the grace is exclusive
    assert outbox_is_orphaned("2026-11-26T09:00:00+00:00", NOW)


# ------------------------------------------------------------------ our events


def test_stable_event_id_is_deterministic_uuid_shaped_and_distinct_per_transition():
    first = stable_event_id(WAVE_COMPLETED, EXEC_ID, 1, "COMPLETED")
    assert first == stable_event_id(WAVE_COMPLETED, EXEC_ID, 1, "COMPLETED")
    assert str(uuid.UUID(first)) == first
    others = {
        stable_event_id(WAVE_COMPLETED, EXEC_ID, 2, "COMPLETED"),
        stable_event_id(WAVE_COMPLETED, EXEC_ID, 1, "PARTIAL"),
        stable_event_id(WAVE_COMPLETED, str(uuid.uuid4()), 1, "COMPLETED"),
        stable_event_id(EXECUTION_COMPLETED, EXEC_ID, "COMPLETED"),
        stable_event_id(EXECUTION_COMPLETED, EXEC_ID, "CANCELLED"),
    }
    assert first not in others and len(others) == 5


def test_stable_event_ids_never_change_between_releases():
    """Consumers deduplicate on the id: a transition announced by one release and again by the next
    (a redelivery across a deploy) must carry the same id, so the derivation is pinned here."""
    assert stable_event_id(WAVE_COMPLETED, EXEC_ID, 1, "COMPLETED") == "4b015f96-19c7-2fd4-d593-e5392d736d9c"
    assert stable_event_id(EXECUTION_COMPLETED, EXEC_ID, "PARTIAL") == "7b0c44e7-d9f5-42d5-f5f3-0c5712bd6eee"


def test_wave_completed_event():
    ended = wave(2, PA)
    event = wave_completed_event(ended)
    assert event.detail_type == WAVE_COMPLETED
    assert event.event_id == stable_event_id(WAVE_COMPLETED, EXEC_ID, 2, "PARTIAL")
    assert event.detail == {
        "eventId": event.event_id,
        "executionId": EXEC_ID,
        "waveNumber": 2,
        "name": "wave 2",
        "status": "PARTIAL",
        "isDrill": True,
        "jobId": ended.job_id,
        "startTime": STAMP,
        "endTime": STAMP,
        "counts": {"servers": 2, "launched": 1, "failed": 1},
    }
    assert wave_completed_event(ended) == event  # the same on every call


def test_a_terminated_server_counts_as_launched():
    ended = wave(1, C, servers=(server(1, LaunchStatus.TERMINATED), server(2, LaunchStatus.LAUNCHED)))
    assert wave_completed_event(ended).detail["counts"] == {"servers": 2, "launched": 2, "failed": 0}


def test_execution_completed_event():
    waves = [wave(1, C), wave(2, PA), wave(3, X)]
    event = execution_completed_event(execution(), waves, ExecutionStatus.PARTIAL, "2026-11-26T11:00:00.000Z")
    assert event.detail_type == EXECUTION_COMPLETED
    assert event.event_id == stable_event_id(EXECUTION_COMPLETED, EXEC_ID, "PARTIAL")
    assert event.detail == {
        "eventId": event.event_id,
        "executionId": EXEC_ID,
        "name": "drill",
        "status": "PARTIAL",
        "isDrill": True,
        "endTime": "2026-11-26T11:00:00.000Z",
        "waves": 3,
        "counts": {"servers": 6, "launched": 3, "failed": 1},
    }


@pytest.mark.parametrize("status", [C, PA, F, X])
def test_with_wave_event_adds_exactly_one_event_to_a_terminal_wave(status: WaveStatus):
    ended = with_wave_event(wave(1, status))
    assert [e.detail_type for e in ended.outbox] == [WAVE_COMPLETED]
    assert ended.outbox[0] == wave_completed_event(wave(1, status))
    assert with_wave_event(ended) == ended  # applied again (a retried write): still one


@pytest.mark.parametrize("status", [P, L])
def test_with_wave_event_adds_nothing_to_a_wave_that_is_not_terminal(status: WaveStatus):
    assert with_wave_event(wave(1, status)) == wave(1, status)


def test_with_wave_event_adds_nothing_to_an_announced_wave():
    announced = wave(1, C, announced=True)
    assert with_wave_event(announced) == announced


def test_with_wave_event_keeps_other_pending_events():
    other = OutboxEvent(event_id="x", detail_type="Something Else", detail={})
    ended = with_wave_event(wave(1, C, outbox=(other,)))
    assert [e.detail_type for e in ended.outbox] == ["Something Else", WAVE_COMPLETED]


def test_expiry_is_the_end_plus_the_retention_in_epoch_seconds():
    end = "2026-11-26T10:00:00.000Z"
    assert expiry(end, timedelta(days=90)) == int((NOW + timedelta(days=90)).timestamp())


# ------------------------------------------------------------------ property


@st.composite
def situations(draw: st.DrawFn) -> tuple[ExecutionRecord, list[WaveRecord]]:
    count = draw(st.integers(min_value=1, max_value=5))
    waves = []
    for number in range(1, count + 1):
        status = draw(st.sampled_from(list(WaveStatus)))
        claim = draw(st.one_of(st.none(), st.floats(min_value=-1, max_value=20)))
        job = draw(st.booleans()) if status is P else status in (L, C, PA)
        waves.append(
            wave(
                number,
                status,
                job_id=f"drsjob-{number:017d}" if job else None,
                start_requested_at=None if claim is None else ago(claim),
                start_attempts=0 if claim is None else draw(st.integers(1, MAX_START_ATTEMPTS)),
                pause_before_wave=draw(st.booleans()),
            )
        )
    numbers = st.integers(min_value=1, max_value=count)
    ex = execution(
        wave_count=count,
        stop_on_partial=draw(st.booleans()),
        paused_before=draw(st.one_of(st.none(), numbers)),
        resumed=tuple(draw(st.lists(numbers, max_size=count, unique=True))),
        cancel_requested_at=draw(st.one_of(st.none(), st.just(ago(1)))),
        status=draw(st.one_of(st.none(), st.sampled_from(list(ExecutionStatus)))),
    )
    return ex, draw(st.permutations(waves))


@settings(max_examples=600, deadline=None)
@given(situations())
def test_plan_next_never_starts_a_wave_out_of_turn_or_twice(
    situation: tuple[ExecutionRecord, list[WaveRecord]],
):
    ex, waves = situation
    step = plan(ex, waves)
    by_number = {w.wave_number: w for w in waves}
    if step.action in (Action.START, Action.PAUSE, Action.CANCEL_REST):
        assert step.wave_number is not None
        target = by_number[step.wave_number]
        # the wave is the first not terminal: every wave before it is terminal
        assert all(w.is_terminal for w in waves if w.wave_number < step.wave_number)
        assert target.status is P and target.job_id is None
        assert not ex.is_finished
    if step.action is Action.START:
        target = by_number[step.wave_number or 0]
        assert not claim_is_fresh(target, NOW, GRACE)  # never while a claim is fresh
        assert ex.cancel_requested_at is None
        if target.start_requested_at is None:  # a new start (not resolving an expired claim)
            assert not (target.pause_before_wave and target.wave_number not in ex.resumed)
            stopping = [w for w in waves if w.wave_number < target.wave_number and w.status in (PA, F)]
            assert not (ex.stop_on_partial and stopping)
    if step.action is Action.FINISH:
        assert all(w.is_terminal for w in waves)
        assert step.status == derive_status(ex, waves)
    if ex.is_finished:
        assert step == Step(Action.NONE)
