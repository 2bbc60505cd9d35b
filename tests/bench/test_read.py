"""The read benchmark: a smoke run of the section, and its torn-read, regression and polling rules."""

from __future__ import annotations

import copy
import itertools
import math
from collections import Counter
from typing import Any

import pytest

from bench import read
from bench.read_polls import EXTRA_POLLS, Poll, classes, fixed_rate, regressions, summarize, torn_waves
from bench.section import Options
from bench.stats import spread


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
    assert figures["runs"] == figures["setup"]["runs"] == 1
    assert set(figures["steady_ratio"]) == {"1", "2"}
    for gated in [*figures["steady_ratio"].values(), figures["ours_over_bare"]]:
        assert set(gated) >= {"min", "median", "max", "runs"}
        assert len(gated["runs"]) == 1
    for key in ("p50_ms", "p99_ms", "p99_over_p50"):
        assert set(figures["ours"]["latency_runs"][key]) >= {"min", "median", "max", "runs"}
    for kind in ("ours", "legacy"):
        for summary in figures[kind]["by_waves"].values():
            assert set(summary["by_class"]) == {"steady", "enriching"}
            assert summary["by_class"]["enriching"]["polls"] >= 1  # the first answer, at least
    assert "proportion" in figures["setup"]
    assert [t.name.split(" (")[0] for t in section.targets] == [
        "read: ours per poll, every size",
        "read: steady-state legacy/ours p50, every size",
        "read: ours/bare Query p50",
        "read: ours p99 / p50",
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

    polls = fixed_rate(poll, interval=0.02)
    assert len(polls) == 3 + EXTRA_POLLS


# --- steady and enriching polls, on synthetic polls (no stack) -----------------------------------

STEADY_CALLS = Counter({"dynamodb:Query": 1, "drs:DescribeJobs": 1, "dynamodb:PutItem": 1})
ENRICHING_CALLS = STEADY_CALLS + Counter(
    {"drs:DescribeRecoveryInstances": 1, "ec2:DescribeInstances": 1, "dynamodb:PutItem": 1}
)


def _poll(seconds: float, document: dict[str, Any] | None, calls: Counter[str] | None = None) -> Poll:
    return Poll(0.0, seconds, Counter({"dynamodb:Query": 1}) if calls is None else calls, document)


def test_our_poll_is_steady_when_its_answer_did_not_change() -> None:
    launching, done = _document("LAUNCHING", launchStatus="IN_PROGRESS"), _document("COMPLETED")
    polls = [
        _poll(0.01, launching),  # the first answer is news
        _poll(0.01, copy.deepcopy(launching)),
        _poll(0.5, None),  # failed: no class
        _poll(0.01, copy.deepcopy(launching)),  # same as the last answer
        _poll(0.02, done),
        _poll(0.01, copy.deepcopy(done)),
    ]
    assert classes(polls, "ours") == ["enriching", "steady", None, "steady", "enriching", "steady"]


def test_a_legacy_poll_is_steady_without_drs_or_ec2_enrichment() -> None:
    start = Counter({"dynamodb:Query": 1, "drs:StartRecovery": 1, "dynamodb:PutItem": 1})
    done = _document("COMPLETED")
    polls = [
        _poll(0.26, done, STEADY_CALLS),
        _poll(0.9, done, ENRICHING_CALLS),
        _poll(0.3, done, start),
        _poll(0.25, done, STEADY_CALLS),  # same answer or not, the requests decide
        _poll(0.02, done, Counter({"dynamodb:Query": 1})),  # over: only the Query
        _poll(1.0, None, ENRICHING_CALLS),
    ]
    assert classes(polls, "legacy") == ["steady", "enriching", "enriching", "steady", "steady", None]


def test_summaries_give_p50_and_p99_per_class() -> None:
    done = _document("COMPLETED")
    run = [_poll(0.9, done, ENRICHING_CALLS)] + [_poll(0.2 + i / 1000, done, STEADY_CALLS) for i in range(21)]
    summary = summarize([run, run, run], "legacy")
    steady, enriching = summary["by_class"]["steady"], summary["by_class"]["enriching"]
    assert steady == {"p50_ms": 210.0, "p99_ms": 219.8, "polls": 63, "share": round(63 / 66, 3)}
    assert enriching["p50_ms"] == enriching["p99_ms"] == 900.0
    assert enriching["polls"] == 3
    # all polls together: the median is a steady poll, the p99 lands among the enriching ones
    assert summary["p50_ms"] == 210.5
    assert summary["p99_ms"] > 219.8


def test_the_steady_ratio_compares_steady_polls_only() -> None:
    done, launching = _document("COMPLETED"), _document("LAUNCHING", launchStatus="IN_PROGRESS")
    legacy = [_poll(0.9, done, ENRICHING_CALLS)] * 3 + [_poll(0.25, done, STEADY_CALLS)] * 4
    ours = [_poll(0.5, launching)] + [_poll(0.02, copy.deepcopy(launching))] * 4 + [_poll(0.5, done)]
    assert read.steady_ratio(legacy, ours) == pytest.approx(12.5)
    # without a steady poll on one side there is no ratio, and its run is left out of the spread
    assert math.isnan(read.steady_ratio(legacy, [_poll(0.5, launching)]))
    gated = read.with_runs([12.5, float("nan"), 9.0, 30.0], 1)
    assert gated == {"min": 9.0, "median": 12.5, "max": 30.0, "runs": [12.5, None, 9.0, 30.0]}


def test_a_spread_is_min_median_and_max() -> None:
    assert spread([3.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "max": 3.0}
    assert spread([21.04, 62.0, 30.55, 40.0], 1) == {"min": 21.0, "median": 35.3, "max": 62.0}
    assert spread([]) == {"min": None, "median": None, "max": None}
