"""The drill clean-up's pure rules (reconciler/cleanup_rules.py): a forward-only graph of its own
(the wave's status never moves: I1), a lost TERMINATE job adopted, never asked twice while a
claim is fresh or a job is under way (I5), asked again only after the grace, FAILED after the
last attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.cleanup_rules import (
    CLEANUP_MAX_ATTEMPTS,
    CleanupLook,
    claimed,
    execution_cleanup_status,
    later_cleanup_status,
    needs_cleanup,
    next_cleanup,
    to_terminate,
    with_jobs,
)
from schemas.records import CleanupStatus, LaunchStatus, ServerRecord, WaveRecord, WaveStatus
from schemas.times import iso_z

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)


def wave(**update: object) -> WaveRecord:
    servers = (
        ServerRecord(
            source_server_id="s-aaaaaaaaaaaaaaaaa",
            launch_status=LaunchStatus.LAUNCHED,
            recovery_instance_id="i-00000000000000001",
            recovered_instance_id="i-0000000000000000a",
            ec2_state="running",
        ),
        ServerRecord(source_server_id="s-bbbbbbbbbbbbbbbbb", launch_status=LaunchStatus.FAILED),
    )
    base = WaveRecord(
        execution_id="e",
        wave_number=1,
        name="w",
        status=WaveStatus.PARTIAL,
        is_drill=True,
        job_id="drsjob-aaaaaaaaaaaaaaaaa",
        servers=servers,
        version=3,
        created_at=iso_z(NOW),
        updated_at=iso_z(NOW),
    )
    return base.model_copy(update=update)


def requested(minutes_ago: float, attempts: int = 1, **update: object) -> WaveRecord:
    return wave(
        cleanup_status=CleanupStatus.REQUESTED,
        cleanup_requested_at=iso_z(NOW - timedelta(minutes=minutes_ago)),
        cleanup_attempts=attempts,
        **update,
    )


def look(drs: str | None = "RUNNING", ec2: str | None = "running", jobs: dict[str, str] | None = None):
    return CleanupLook(
        drs_states={} if drs is None else {"i-00000000000000001": drs},
        ec2_states={} if ec2 is None else {"i-0000000000000000a": ec2},
        jobs=jobs or {},
        observed_at=NOW,
    )


def test_only_launched_servers_of_a_terminal_wave_are_cleaned_up():
    assert needs_cleanup(wave())
    assert to_terminate(wave()) == ["i-00000000000000001"]
    assert not needs_cleanup(wave(status=WaveStatus.LAUNCHING))
    assert not needs_cleanup(requested(1))


@pytest.mark.parametrize("stored", list(CleanupStatus))
@pytest.mark.parametrize("wanted", list(CleanupStatus))
def test_the_clean_up_graph_only_moves_forward(stored: CleanupStatus, wanted: CleanupStatus):
    order = [CleanupStatus.REQUESTED, CleanupStatus.TERMINATING, CleanupStatus.TERMINATED]
    result = later_cleanup_status(stored, wanted)
    if stored in (CleanupStatus.TERMINATED, CleanupStatus.FAILED):
        assert result == stored
    elif wanted is CleanupStatus.FAILED:
        assert result == wanted
    else:
        assert order.index(result) == max(order.index(stored), order.index(wanted))


def test_a_recorded_job_makes_it_terminating_and_a_later_claim_never_moves_it_back():
    terminating = with_jobs(requested(0), ["drsjob-bbbbbbbbbbbbbbbbb"])
    assert terminating.cleanup_status is CleanupStatus.TERMINATING
    again = claimed(terminating, iso_z(NOW))
    assert again.cleanup_status is CleanupStatus.TERMINATING and again.cleanup_attempts == 2


def test_ec2_terminated_ends_it_and_the_wave_s_own_status_never_moves():
    stored = with_jobs(requested(1), ["drsjob-bbbbbbbbbbbbbbbbb"])
    done, again = next_cleanup(
        stored, look("TERMINATED", "terminated", {"drsjob-bbbbbbbbbbbbbbbbb": "COMPLETED"}), grace=GRACE
    )
    assert not again
    assert done.cleanup_status is CleanupStatus.TERMINATED and done.cleanup_end_time == iso_z(NOW)
    assert done.servers[0].ec2_state == "terminated"
    assert done.status is WaveStatus.PARTIAL and done.servers[1] == stored.servers[1]


def test_an_instance_neither_ec2_nor_drs_shows_any_more_is_terminated():
    done, _ = next_cleanup(requested(1), look(None, None), grace=GRACE)
    assert done.cleanup_status is CleanupStatus.TERMINATED


def test_a_fresh_claim_is_left_alone_and_an_expired_one_is_asked_again():
    fresh, again = next_cleanup(requested(1), look(), grace=GRACE)
    assert (fresh, again) == (requested(1), False)
    expired, again = next_cleanup(requested(6), look(), grace=GRACE)
    assert again and expired.cleanup_status is CleanupStatus.REQUESTED


def test_a_terminate_job_whose_answer_was_lost_is_adopted_not_asked_again():
    adopted, again = next_cleanup(
        requested(6), look(jobs={"drsjob-ccccccccccccccccc": "STARTED"}), grace=GRACE
    )
    assert not again
    assert adopted.cleanup_status is CleanupStatus.TERMINATING
    assert adopted.cleanup_job_ids == ("drsjob-ccccccccccccccccc",)


def test_instances_on_their_way_out_are_not_asked_again():
    shutting, again = next_cleanup(requested(6), look("SHUTTING-DOWN", "shutting-down"), grace=GRACE)
    assert not again and shutting.servers[0].ec2_state == "shutting-down"


def test_after_the_last_attempt_it_fails_saying_why():
    failed, again = next_cleanup(requested(6, attempts=CLEANUP_MAX_ATTEMPTS), look(), grace=GRACE)
    assert not again
    assert failed.cleanup_status is CleanupStatus.FAILED
    assert "i-0000000000000000a" in (failed.cleanup_error or "")
    # and a FAILED clean-up is final
    assert next_cleanup(failed, look(None, None), grace=GRACE) == (failed, False)


def test_the_execution_s_clean_up_sums_up_its_waves():
    assert execution_cleanup_status([wave()]) is None
    terminated = wave(cleanup_status=CleanupStatus.TERMINATED)
    terminating = wave(cleanup_status=CleanupStatus.TERMINATING)
    assert execution_cleanup_status([terminated, wave()]) == "TERMINATED"
    assert execution_cleanup_status([terminated, terminating]) == "TERMINATING"
    assert execution_cleanup_status([terminating, requested(0)]) == "REQUESTED"
    assert execution_cleanup_status([terminated, wave(cleanup_status=CleanupStatus.FAILED)]) == "FAILED"
