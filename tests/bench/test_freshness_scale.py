"""The freshness and scale sections on a tiny live stack, and the 100,000-server arithmetic."""

from __future__ import annotations

import pytest

from bench import freshness, scale
from bench.section import Options, Section

SMOKE = Options(scale="smoke", repeat=1)


@pytest.fixture(scope="module")
def fresh() -> Section:
    return freshness.run(SMOKE)


@pytest.fixture(scope="module")
def scaled() -> Section:
    return scale.run(SMOKE)


def test_freshness_every_wave_terminal_and_measured(fresh: Section) -> None:
    waves, servers = freshness.SIZES["smoke"]
    for name in ("events_on", "events_lost"):
        figures = fresh.figures[name]
        assert figures["waves"] == figures["terminal"] == waves
        assert 0 <= figures["min_s"] <= figures["p50_s"] <= figures["p99_s"] <= figures["max_s"]
        assert figures["failed_invocations"] == 0
    on, lost = fresh.figures["events_on"], fresh.figures["events_lost"]
    # every event is delivered and reconciled once; the last one settles the wave
    assert on["reconcile_invocations"] == waves * servers
    assert on["terminal_written_by"] == {"event": waves}
    assert on["sweep_invocations"] == 0
    # with every event lost, only the sweep can finish a wave, within one or two sweeps of truth
    assert lost["reconcile_invocations"] == 0
    assert lost["terminal_written_by"] == {"sweep": waves}
    assert lost["sweeps_started_after_truth"]["max"] <= 1
    assert len(fresh.targets) == 2


def test_scale_counts_writes_requests_and_events(scaled: Section) -> None:
    f = scaled.figures
    accounts, servers = scale.ACCOUNTS["smoke"], scale.SERVERS["smoke"]
    assert f["waves"] == f["terminal"] == accounts
    assert f["events"] == f["reconcile_invocations"] == accounts * servers
    assert f["failed_invocations"] == 0
    assert f["dynamodb_writes"] > 0 and f["dynamodb_writes_per_s"]["peak"] > 0
    # each event's reconcile reads DRS (DescribeJobs at least) unless its wave was already terminal
    assert f["requests"]["drs"]["requests"] >= accounts
    assert 0 <= f["freshness_s"]["p50"] <= f["freshness_s"]["max"]
    cost = f["per_event"]
    assert cost["seconds"] > 0 and cost["writes"] > 0 and cost["item_bytes_per_server"] > 0
    assert f["measured_wcu_per_write"] >= 1
    assert f["capacity_100k"]["servers"] == 100_000


def test_capacity_arithmetic_on_a_hand_made_input() -> None:
    cost = scale.PerEvent(
        seconds=0.5,
        reconcile_seconds=0.4,
        drs_calls=3.0,
        ec2_calls=1.0,
        writes=1.2,
        reads=2.0,
        item_bytes_per_server=45.0,  # a 100-server wave item of 4,500 bytes: 5 WCU, 2 RCU
    )
    paper = scale.capacity(
        cost, servers=100_000, accounts=200, wave_size=100, spread_s=600.0, peak_factor=1.5
    )
    assert paper["events_per_s_mean"] == pytest.approx(166.67)
    assert paper["events_per_s_peak"] == 250.0
    assert paper["lambda_concurrency"] == 125  # 250 events/s x 0.5 s (Little's law)
    assert paper["dynamodb_wcu_per_s"] == 1500  # 250 x 1.2 writes x 5 WCU
    assert paper["dynamodb_rcu_per_s"] == 1000  # 250 x 2 reads x 2 RCU
    assert paper["drs_calls_per_s_per_account"] == 3.75  # 250 / 200 accounts x 3 calls
    assert paper["ec2_calls_per_s_per_account"] == 1.25
    assert paper["servers_per_account"] == 500
    assert paper["jobs_per_account"] == 5
    assert paper["inflight_waves"] == 1000
    assert paper["sweep_pass_s"] == 50.0  # ceil(1000 / 8) looks x 0.4 s
    assert paper["sweep_concurrency_needed"] == 14  # 1000 x 0.4 s in 30 s
    assert paper["sweep_drs_calls_per_s_per_account"] == pytest.approx(5 * 2 / 60, abs=0.01)
