"""A deferred start in the pure decisions: `plan_next` waits for its retry time and then starts it,
`never_started` counts it as never started (a cancel ends it at once), and adopting a job found in
DRS ends the deferral (`core.resolve_start`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from reconciler.core import resolve_start
from reconciler.lifecycle import Action, Step, never_started, plan_next
from reconciler.observation import ObservedJob
from schemas.records import WaveRecord, WaveStatus
from schemas.times import iso_z
from tests.unit.test_lifecycle import GRACE, NOW, ago, execution, wave


def deferred(number: int = 1, *, retry_in: timedelta = timedelta(seconds=30), **changes: Any) -> WaveRecord:
    return wave(
        number,
        start_requested_at=ago(10),
        start_retry_at=iso_z(NOW + retry_in),
        start_deferred_since=ago(2),
        start_problem="ThrottlingException: Rate exceeded",
        **changes,
    )


def test_a_deferred_start_waits_for_its_retry_time_then_is_due():
    waves = [wave(1, WaveStatus.COMPLETED), deferred(2)]
    assert plan_next(execution(), waves, now=NOW, start_grace=GRACE) == Step(
        Action.NONE, 2, "start deferred: ThrottlingException: Rate exceeded"
    )
    due = [wave(1, WaveStatus.COMPLETED), deferred(2, retry_in=timedelta(0))]
    assert plan_next(execution(), due, now=NOW, start_grace=GRACE) == Step(
        Action.START, 2, "deferred start due"
    )
    # a claim older than the grace is no reason to start a deferred wave before its time
    assert plan_next(execution(), waves, now=NOW, start_grace=timedelta(0)).action is Action.NONE


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, True),  # never claimed
        ({"start_requested_at": ago(1)}, False),  # claimed: a job may exist
        ({"start_requested_at": ago(1), "start_retry_at": ago(0)}, True),  # deferred: DRS started nothing
        ({"start_retry_at": ago(0)}, True),
        ({"job_id": "drsjob-1"}, False),
        ({"job_id": "drsjob-1", "start_retry_at": ago(0)}, False),
        ({"status": WaveStatus.CANCELLED}, False),
        ({"status": WaveStatus.FAILED, "start_retry_at": ago(0)}, False),
    ],
)
def test_never_started_is_pending_with_no_job_and_no_live_claim(changes: dict[str, object], expected: bool):
    assert never_started(wave(1).model_copy(update=changes)) is expected


def test_adopting_a_found_job_ends_the_deferral():
    found = ObservedJob("drsjob-1", "STARTED", "2026-11-26T09:59:00.000Z")
    adopted = resolve_start(deferred(1), found, now=NOW, start_grace=GRACE)
    assert (adopted.status, adopted.job_id) == (WaveStatus.LAUNCHING, "drsjob-1")
    assert adopted.start_retry_at is None and adopted.start_deferred_since is None
    assert adopted.start_problem is None
