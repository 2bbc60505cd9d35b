"""The read benchmark: a smoke run of the section, and its torn-read, regression and polling rules."""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from typing import Any

import pytest

from bench import read
from bench.read_polls import EXTRA_POLLS, Poll, fixed_rate, regressions, torn_waves
from bench.section import Options


@pytest.fixture(scope="module")
def section() -> Any:
    return read.run(Options(scale="smoke", repeat=1))


def test_smoke_run_has_the_required_figures(section: Any) -> None:
    figures = section.figures
    for kind in ("ours", "legacy"):
        for key in ("requests_per_poll", "writes_per_poll", "p50_ms", "torn_reads", "p99_ms", "by_waves"):
            assert key in figures[kind], (kind, key)
        assert set(figures[kind]["by_waves"]) == {"1", "2"}
        assert figures[kind]["p50_ms"] > 0
        assert figures[kind]["polls"] >= 3
        for lagged in ("torn_reads", "torn_rate", "polls"):
            assert lagged in figures["ec2_lag"][kind]
    assert figures["ratios"]["ours_over_bare_p50_settled"] > 0
    assert [t.name.split(" (")[0] for t in section.targets] == [
        "read: ours per poll, every size",
        "read: legacy/ours p50",
        "read: ours/bare Query p50",
        "read: ours torn reads",
    ]


def test_our_read_is_one_query_and_no_write_at_every_size(section: Any) -> None:
    for summary in [
        *section.figures["ours"]["by_waves"].values(),
        *section.figures["ec2_lag"]["ours"]["by_waves"].values(),
    ]:
        assert summary["requests_per_poll"] == {"dynamodb": 1, "drs": 0, "ec2": 0}
        assert summary["max_requests_per_poll"] == {"dynamodb": 1, "drs": 0, "ec2": 0}
        assert summary["min_dynamodb_per_poll"] == 1
        assert summary["writes_per_poll"] == summary["max_writes_per_poll"] == 0
        assert summary["failed_polls"] == 0
        assert summary["unfinished_runs"] == 0
    assert section.targets[0].met
    assert section.figures["ours"]["torn_reads"] == 0


def test_legacy_read_calls_drs_and_writes(section: Any) -> None:
    legacy = section.figures["legacy"]
    for summary in legacy["by_waves"].values():
        assert summary["writes_per_poll"] > 0
        assert summary["requests_per_poll"]["drs"] > 0
        assert summary["max_requests_per_poll"]["ec2"] >= 1  # the enrichment ran
        assert summary["unfinished_runs"] == 0
    assert (
        legacy["by_waves"]["2"]["max_requests_per_poll"]["drs"] >= 2
    )  # DescribeJobs, then DescribeRecoveryInstances or StartRecovery


def _document(status: str, **server: Any) -> dict[str, Any]:
    launched = {
        "sourceServerId": "s-00000000000000001",
        "launchStatus": "LAUNCHED",
        "recoveredInstanceId": "i-0123456789abcdef0",
        "instanceType": "m5.large",
        "privateIp": "10.0.0.1",
        "launchTime": "2026-11-27T00:00:00Z",
    }
    return {
        "status": "RUNNING",
        "waves": [{"waveNumber": 1, "status": status, "servers": [{**launched, **server}]}],
    }


def test_a_green_wave_without_ec2_details_is_torn() -> None:
    assert torn_waves(_document("COMPLETED", privateIp=None)) == ["wave 1 COMPLETED: s-00000000000000001"]
    assert torn_waves(_document("PARTIAL", launchTime=None))
    assert torn_waves(_document("COMPLETED", recoveredInstanceId=None, instanceType=None))


def test_complete_unfinished_or_explained_waves_are_not_torn() -> None:
    assert torn_waves(_document("COMPLETED")) == []
    assert torn_waves(_document("LAUNCHING", privateIp=None)) == []  # not green yet
    assert torn_waves(_document("PARTIAL", privateIp=None, error="EC2 never showed it")) == []
    assert torn_waves(_document("COMPLETED", launchStatus="FAILED", privateIp=None)) == []


def test_statuses_moving_backwards_are_regressions() -> None:
    done = _document("COMPLETED")
    assert regressions(done, copy.deepcopy(done)) == []
    assert regressions(_document("LAUNCHING", launchStatus="IN_PROGRESS"), done) == []
    assert regressions(done, _document("LAUNCHING")) == ["wave 1 COMPLETED -> LAUNCHING"]
    assert regressions(done, _document("COMPLETED", launchStatus="IN_PROGRESS")) == [
        "s-00000000000000001 LAUNCHED -> IN_PROGRESS"
    ]


def test_the_poller_stops_a_fixed_number_of_polls_after_the_first_terminal_answer() -> None:
    numbers = itertools.count(1)

    def poll(origin: float) -> Poll:
        status = "COMPLETED" if next(numbers) >= 3 else "RUNNING"
        return Poll(0.0, 0.0, Counter(), {"status": status, "waves": []})

    polls = fixed_rate(poll, interval=0.02, deadline=float("inf"))
    assert len(polls) == 3 + EXTRA_POLLS
