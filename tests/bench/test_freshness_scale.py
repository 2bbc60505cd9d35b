"""The freshness and scale sections on a tiny live stack; the estimate from the scale run's own
100-server costs and measured peak; the topology the code runs, checked against the code."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from bench import freshness, scale
from bench.section import Options, Section
from local.serverless import functions
from reconciler.settings import Settings

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
    waves = scale.WAVES["smoke"]
    # every scale, smoke too, runs waves of the size the estimate is about: fewer waves, never smaller
    assert f["wave_size"] == scale.WAVE == 100
    assert f["waves"] == f["terminal"] == waves
    assert f["events"] == f["reconcile_invocations"] == waves * scale.WAVE
    assert f["failed_invocations"] == 0
    assert f["dynamodb_writes"] > 0 and f["dynamodb_writes_per_s"]["peak"] > 0
    # each event's reconcile reads DRS (DescribeJobs at least) unless its wave was already terminal
    assert f["requests"]["drs"]["requests"] >= waves
    assert 0 <= f["freshness_s"]["p50"] <= f["freshness_s"]["max"]
    cost = f["per_event"]
    assert cost["wave_size"] == scale.WAVE
    assert cost["seconds"] > 0 and cost["writes"] > 0 and cost["wave_item_bytes"] > 0
    assert cost["wcu_per_write"] >= 1
    assert f["measured_peak_factor"] >= 1


def test_scale_estimate_uses_the_runs_own_100_server_costs_and_peak(scaled: Section) -> None:
    f = scaled.figures
    basis = f["estimate"]["basis"]
    assert basis["wave_size"] == f["per_event"]["wave_size"] == 100
    # the peak factor is the one this run measured, not an assumed one
    assert basis["peak_factor"] == f["measured_peak_factor"]
    assert basis["peak_factor_source"].startswith("measured")
    # the one figure no run here measures is said to be assumed
    assert basis["launch_spread_source"].startswith("assumed, not measured")
    # the pace the costs were measured at stands beside the pace the estimate assumes
    assert basis["run_events_per_s_per_wave"] == f["events_per_s_per_wave"] > 0
    assert basis["events_per_s_per_wave"] == round(scale.WAVE / scale.PAPER_SPREAD_S, 2)
    # recomputing from the section's own measured figures gives the section's estimate
    again = scale.estimate(
        scale.PerEvent(**f["per_event"]),
        peak_factor=f["measured_peak_factor"],
        run_events_per_s_per_wave=f["events_per_s_per_wave"],
    )
    assert again == f["estimate"]
    one = f["estimate"]["deployment"]
    assert one["servers"] == f["topology"]["servers_recovering_at_once"] == 500
    assert one["events_per_s_peak"] == pytest.approx(
        one["events_per_s_mean"] * f["measured_peak_factor"], abs=0.02
    )
    many = f["estimate"]["projection"]
    assert many["servers"] == 100_000 and many["deployments"] == 200
    assert "projection" in many["note"] and "no hub" in many["note"]


def test_scale_states_the_topology_the_code_runs(scaled: Section) -> None:
    shape = scaled.figures["topology"]
    assert shape == scale.topology()
    assert shape["accounts_per_deployment"] == shape["regions_per_deployment"] == 1
    assert shape["multi_account"] is False
    assert shape["drs_quotas"] == {
        "servers_per_job": 100,
        "concurrent_jobs": 20,
        "servers_in_active_jobs": 500,
        "replicating_servers_per_account_region": 300,
    }
    assert shape["max_servers_per_wave"] == 100 and shape["jobs_at_once"] == 5
    assert "one AWS account and one Region" in shape["statement"]
    assert "A hub over many accounts is not built" in shape["statement"]
    assert ("topology (what the code runs)", shape["statement"]) in scaled.rows
    assert any(label.endswith("(projection, not one deployment)") for label, _ in scaled.rows)


def test_the_topology_statement_holds_for_the_code() -> None:
    """What the statement says of the code: no AssumeRole, no Region of its own, MAX_SERVERS_PER_WAVE
    100 by default, the DRS rule on the deployment's default bus. When a hub is built (a later
    issue), this test fails and the statement must change with it."""
    root = Path(__file__).resolve().parents[2]
    sources = [
        path.read_text() for folder in ("reconciler", "handlers") for path in (root / folder).glob("*.py")
    ]
    for word in ("assume_role", "AssumeRole", '"sts"', "region_name"):
        assert not any(word in text for text in sources), word
    assert "return boto3.client(service, config=" in (root / "reconciler" / "clients.py").read_text()
    assert Settings.model_fields["max_servers_per_wave"].default == 100
    rules = [event["eventBridge"] for event in functions()["reconcile"].events if "eventBridge" in event]
    assert [rule["pattern"]["source"] for rule in rules] == [["aws.drs"]]
    assert "eventBus" not in rules[0]  # the default bus of the deployment's own account and Region


def test_the_readme_says_how_many_waves_each_scale_runs() -> None:
    words = {1: "one", 2: "two", 5: "five"}
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert (
        f"({words[scale.WAVES['default']]} by default, {words[scale.WAVES['full']]} with `SCALE=full`)"
        in readme
    )
    assert f"{words[scale.WAVES['full']]} waves of {scale.WAVE} servers" in readme


def test_estimate_arithmetic_on_a_hand_made_input() -> None:
    cost = scale.PerEvent(
        wave_size=100,
        seconds=0.5,
        reconcile_seconds=0.5,
        drs_calls=3.0,
        ec2_calls=1.0,
        writes=1.25,
        wcu_per_write=4.0,
        reads=2.0,
        wave_item_bytes=4500,  # 2 RCU per strongly consistent read
    )
    paper = scale.estimate(cost, peak_factor=3.5, servers=100_000, spread_s=500.0)
    one, many = paper["deployment"], paper["projection"]
    assert paper["basis"]["peak_factor"] == 3.5 and paper["basis"]["launch_spread_s"] == 500.0
    assert paper["basis"]["events_per_s_per_wave"] == 0.2  # 100 servers' events over 500 s
    assert one["servers"] == 500 and one["waves"] == 5  # DRS: 500 servers across active jobs
    assert one["events_per_s_mean"] == 1.0  # 500 servers over 500 s
    assert one["events_per_s_peak"] == 3.5  # x the measured peak factor
    assert one["lambda_concurrency"] == 2  # ceil(3.5 events/s x 0.5 s) (Little's law)
    assert one["dynamodb_wcu_per_s"] == 18  # ceil(3.5 x 1.25 writes x 4 WCU)
    assert one["dynamodb_rcu_per_s"] == 14  # 3.5 x 2 reads x 2 RCU
    assert one["drs_calls_per_s"] == 10.5 and one["ec2_calls_per_s"] == 3.5
    assert one["sweep_inflight_waves"] == 20  # one per concurrent job DRS allows
    assert one["sweep_pass_s"] == 1.5  # ceil(20 / 8) looks x 0.5 s
    assert one["sweep_drs_calls_per_s"] == pytest.approx(20 * 2 / 60, abs=0.01)
    assert one["sweep_waves_in_half_period"] == 480  # 8 at a time x 30 s / 0.5 s
    assert one["sweep_waves_in_half_period_max"] == 3840  # 64 at a time
    assert many["deployments"] == 200
    assert many["lambda_concurrency_sum"] == 400
    assert many["dynamodb_wcu_per_s_sum"] == 3600
    assert many["dynamodb_rcu_per_s_sum"] == 2800
    assert many["drs_calls_per_s_per_account"] == 10.5


def test_estimate_refuses_costs_of_smaller_waves_and_a_missing_peak() -> None:
    cost = scale.PerEvent(
        wave_size=10,
        seconds=1.0,
        reconcile_seconds=1.0,
        drs_calls=2.0,
        ec2_calls=1.0,
        writes=1.0,
        wcu_per_write=4.0,
        reads=2.0,
        wave_item_bytes=3600,
    )
    with pytest.raises(ValueError, match="100-server waves"):
        scale.estimate(cost, peak_factor=3.6)
    with pytest.raises(ValueError, match="peak factor"):
        scale.estimate(replace(cost, wave_size=100), peak_factor=math.nan)
