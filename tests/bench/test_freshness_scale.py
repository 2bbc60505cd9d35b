"""The freshness and scale sections on a tiny live stack; the scale run across spoke accounts, each
with its own DRS simulator, measured per account; the estimate from the scale run's own
100-server and per-account costs and measured peaks; the topology the code runs (a hub over spoke
accounts), checked against the code."""

from __future__ import annotations

import inspect
import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from bench import freshness, scale
from bench.section import Options, Section
from local.accounts import forwarding_pattern
from local.serverless import functions
from reconciler.settings import Settings
from reconciler.sweep import Sweeper
from schemas.api import WavePlan

ROOT = Path(__file__).resolve().parents[2]

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


def test_scale_recovers_in_every_spoke_account_and_counts_writes_requests_and_events(scaled: Section) -> None:
    f = scaled.figures
    accounts = scale.ACCOUNTS["smoke"]
    waves = accounts * scale.WAVES_PER_ACCOUNT
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


def test_scale_measures_each_spoke_account_from_its_own_drs_and_sts(scaled: Section) -> None:
    f = scaled.figures
    targets = scale.spoke_targets(scale.ACCOUNTS["smoke"])
    # the waves recovered in the spoke accounts, one DRS each, in the hub's Region and another
    assert f["accounts"] == len(targets) >= 2
    assert sorted(f["per_account"]) == sorted(f"{account}/{region}" for account, region in targets)
    assert f["regions"] == sorted(scale.SPOKE_REGIONS)
    for name, account in f["per_account"].items():
        assert account["waves"] == account["terminal"] == scale.WAVES_PER_ACCOUNT, name
        assert account["servers"] == scale.WAVES_PER_ACCOUNT * scale.WAVE
        # its own DRS received the POST's checks, the start and the reconciles' reads
        assert account["drs_requests"] >= 3, (name, account)
        assert 0 < account["drs_per_s_mean"] <= account["drs_per_s_peak"] <= account["drs_requests"]
        assert account["drs_peak_factor"] >= 1
        # reached through both of its roles, assumed through the STS layer, none refused
        assert account["assume_roles"]["observe"] >= 1 and account["assume_roles"]["start"] >= 1, account
        assert account["assume_roles_refused"] == 0
    # every DRS request the hub's in-process handlers made reached a spoke's DRS (the HTTP
    # functions' worker processes add theirs: the simulators' logs hold at least as many)
    assert sum(a["drs_requests"] for a in f["per_account"].values()) >= f["requests"]["drs"]["requests"]
    # the median and the maximum across accounts are of those accounts
    drs = f["drs_per_account"]
    peaks = [a["drs_per_s_peak"] for a in f["per_account"].values()]
    assert drs["per_s_peak"]["max"] == max(peaks) and min(peaks) <= drs["per_s_peak"]["median"]
    roles = f["assume_roles_per_account"]
    totals = [sum(a["assume_roles"].values()) for a in f["per_account"].values()]
    assert roles["total"]["max"] == max(totals) and roles["refused"] == 0
    basis = f["per_account_cost"]
    assert basis["servers"] == scale.WAVE and basis["drs_peak_factor"] == drs["peak_factor"]["median"]


def test_scale_estimate_uses_the_runs_own_costs_and_peaks(scaled: Section) -> None:
    f = scaled.figures
    basis = f["estimate"]["basis"]
    assert basis["wave_size"] == f["per_event"]["wave_size"] == 100
    # the peak factors are the ones this run measured, not assumed ones
    assert basis["peak_factor"] == f["measured_peak_factor"]
    assert basis["peak_factor_source"].startswith("measured")
    assert basis["account_drs_peak_factor"] == f["per_account_cost"]["drs_peak_factor"]
    assert basis["per_account"].startswith("measured")
    # the figures no run here measures are said to be assumed
    assert basis["launch_spread_source"].startswith("assumed, not measured")
    assert basis["servers_per_account_source"].startswith("assumed, not measured")
    # the pace the costs were measured at stands beside the pace the estimate assumes
    assert basis["run_events_per_s_per_wave"] == f["events_per_s_per_wave"] > 0
    assert basis["events_per_s_per_wave"] == round(scale.WAVE / scale.PAPER_SPREAD_S, 2)
    # recomputing from the section's own measured figures gives the section's estimate
    again = scale.estimate(
        scale.PerEvent(**f["per_event"]),
        scale.PerAccount(**f["per_account_cost"]),
        peak_factor=f["measured_peak_factor"],
        run_events_per_s_per_wave=f["events_per_s_per_wave"],
    )
    assert again == f["estimate"]
    one, hub = f["estimate"]["account"], f["estimate"]["hub"]
    # 100,000 servers: as many spoke accounts as DRS's replication quota asks for, under one hub
    assert hub["servers"] == 100_000 and hub["spoke_accounts"] == math.ceil(100_000 / 300) == 334
    assert one["servers"] == 300 <= f["topology"]["servers_recovering_at_once_per_account"] == 500
    assert hub["waves"] == 334 * 3
    assert hub["events_per_s_peak"] == pytest.approx(
        hub["events_per_s_mean"] * f["measured_peak_factor"], abs=0.02
    )
    # each account's DRS requests: its servers' events over the assumed spread, at the rate per
    # server and the peak factor its own DRS logged in this run
    per_server = f["per_account_cost"]["drs_requests_per_server"]
    assert one["drs_requests_per_s_peak"] == round(
        one["servers"] / basis["launch_spread_s"] * per_server * basis["account_drs_peak_factor"], 2
    )
    assert "one hub" in hub["note"]


def test_scale_states_the_topology_the_code_runs(scaled: Section) -> None:
    shape = scaled.figures["topology"]
    assert shape == scale.topology()
    assert shape["multi_account"] is True
    assert shape["spoke_roles"] == ["observe", "start"]
    assert shape["drs_quotas_per_account"] == {
        "servers_per_job": 100,
        "concurrent_jobs": 20,
        "servers_in_active_jobs": 500,
        "replicating_servers_per_account_region": 300,
    }
    assert shape["max_servers_per_wave"] == 100 and shape["jobs_at_once_per_account"] == 5
    assert shape["servers_recovering_at_once"] == "accounts x 500"
    statement = shape["statement"]
    assert "One deployment is a hub over many accounts and Regions" in statement
    assert "(accounts x 500 in all)" in statement and "N / 300 spoke accounts under one hub" in statement
    assert "not built" not in statement and "one AWS account and one Region" not in statement
    assert ("topology (what the code runs)", statement) in scaled.rows
    assert any(label.endswith("one hub over spoke accounts") for label, _ in scaled.rows)


def test_the_topology_statement_holds_for_the_code() -> None:
    """What the statement says of the code, each claim checked where the code makes it: a wave
    names its target; spoke roles assumed with an ExternalId, one refreshable credential per account
    and role; the spokes' events forwarded to the hub's bus, which admits them and whose rule hears
    them; the sweep's per-account lanes; MAX_SERVERS_PER_WAVE 100. When one of these changes, this
    test fails and the statement must change with it."""
    shape = scale.topology()
    # a wave of a plan names its target (account and Region)
    assert {"account_id", "region"} <= set(WavePlan.model_fields)
    # spoke roles: assumed with an ExternalId for an hour, through botocore's refreshable credentials
    spokes = (ROOT / "reconciler" / "spokes.py").read_text()
    for claim in ("assume_role(", "ExternalId=", "DurationSeconds=", "DeferredRefreshableCredentials("):
        assert claim in spokes, claim
    defaults = {name: Settings.model_fields[name].default for name in Settings.model_fields}
    assert defaults["spoke_observe_role"] == "drs-reconciler-observe"
    assert defaults["spoke_start_role"] == "drs-reconciler-start"
    assert [
        level.removeprefix("drs-reconciler-")
        for level in (defaults["spoke_observe_role"], defaults["spoke_start_role"])
    ] == shape["spoke_roles"]
    # the spoke's rule forwards DRS's Launch Result events to the hub's bus; the hub's reconcile
    # rule on its default bus hears exactly those (no account filter: every spoke's arrive)
    forwarded = forwarding_pattern()
    assert forwarded == {"source": ["aws.drs"], "detail-type": ["DRS Source Server Launch Result"]}
    rules = [event["eventBridge"] for event in functions()["reconcile"].events if "eventBridge" in event]
    assert len(rules) == 1 and "eventBus" not in rules[0]  # the hub's default bus
    assert {key: rules[0]["pattern"][key] for key in forwarded} == forwarded
    assert "account" not in rules[0]["pattern"]
    # ... and the hub's bus lets the spokes put them (serverless.yml's HubBusPolicy)
    template = yaml.safe_load((ROOT / "serverless.yml").read_text())
    policy = template["resources"]["Resources"]["HubBusPolicy"]
    assert policy["Type"] == "AWS::Events::EventBusPolicy"
    assert policy["Properties"]["EventBusName"] == "default"
    assert "events:PutEvents" in str(policy["Properties"]["Statement"])
    # the sweep runs lanes per account, at most SWEEP_ACCOUNT_CONCURRENCY waves of one at once
    assert "account_concurrency" in inspect.signature(Sweeper).parameters
    runtime = (ROOT / "reconciler" / "runtime.py").read_text()
    assert "account_concurrency=settings.sweep_account_concurrency" in runtime
    assert defaults["sweep_account_concurrency"] == shape["sweep_account_concurrency"] == 2
    assert defaults["max_servers_per_wave"] == shape["max_servers_per_wave"] == 100


def test_the_readme_says_how_many_accounts_each_scale_runs() -> None:
    words = {2: "two", 4: "four", 20: "twenty"}
    readme = (ROOT / "README.md").read_text()
    assert (
        f"({words[scale.ACCOUNTS['default']]} by default, {words[scale.ACCOUNTS['full']]} with `SCALE=full`)"
        in readme
    )
    assert f"{words[scale.ACCOUNTS['full']]} spoke accounts" in readme
    assert scale.WAVES_PER_ACCOUNT == 1 and f"one wave of {scale.WAVE} servers" in readme


def test_spoke_targets_are_distinct_accounts_in_two_regions() -> None:
    targets = scale.spoke_targets(20)
    assert len({account for account, _ in targets}) == 20
    assert all(
        len(account) == 12 and account.isdigit() and account != "123456789012" for account, _ in targets
    )
    assert {region for _, region in targets} == {"us-east-1", "eu-west-1"}
    assert scale.spoke_targets(4)[:2] == [("200000000001", "us-east-1"), ("200000000002", "eu-west-1")]


HAND = scale.PerEvent(
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
HAND_ACCOUNT = scale.PerAccount(
    servers=100, drs_requests_per_server=2.5, drs_peak_factor=4.0, assume_roles_per_level=1.0
)


def test_estimate_arithmetic_on_a_hand_made_input() -> None:
    paper = scale.estimate(HAND, HAND_ACCOUNT, peak_factor=3.5, servers=100_000, spread_s=500.0)
    one, hub = paper["account"], paper["hub"]
    assert paper["basis"]["peak_factor"] == 3.5 and paper["basis"]["launch_spread_s"] == 500.0
    assert paper["basis"]["account_drs_peak_factor"] == 4.0
    assert paper["basis"]["events_per_s_per_wave"] == 0.2  # 100 servers' events over 500 s
    # each account: DRS's ~300 replicating servers (within its 500 at once), 3 waves of 100
    assert one["servers"] == 300 and one["waves"] == 3
    assert one["events_per_s_mean"] == 0.6  # 300 servers over 500 s
    assert one["drs_requests_per_s_mean"] == 1.5  # x 2.5 requests per server (its DRS's log)
    assert one["drs_requests_per_s_peak"] == 6.0  # x its measured DRS peak factor
    assert one["ec2_calls_per_s_peak"] == 2.1  # 0.6 x 3.5 x 1 EC2 call per event
    assert one["sweep_drs_calls_per_s"] == 0.1  # 3 waves x 2 calls a look / 60 s
    # the hub: 334 spoke accounts, 1,002 waves, one table
    assert hub["spoke_accounts"] == 334 and hub["waves"] == 1002
    assert hub["events_per_s_mean"] == 200.0 and hub["events_per_s_peak"] == 700.0
    assert hub["lambda_concurrency"] == 350  # 700 events/s x 0.5 s (Little's law)
    assert hub["dynamodb_wcu_per_s"] == 3500  # 700 x 1.25 writes x 4 WCU
    assert hub["dynamodb_rcu_per_s"] == 2800  # 700 x 2 reads x 2 RCU
    # 350 containers of ~286 events each meet 350 x 334 x (1 - (333/334)^285.7) accounts in all
    assert hub["assume_roles_reconcile"] == 67270 and hub["assume_roles_per_s_mean"] == 134.5
    assert hub["sweep_inflight_waves"] == 1002
    assert hub["sweep_pass_s"] == 63.0  # ceil(1002 / 8) looks x 0.5 s
    assert hub["sweep_pass_s_max_concurrency"] == 8.0  # ceil(1002 / 64) x 0.5 s
    assert hub["sweep_concurrency_needed"] == 17  # 1002 x 0.5 s within 30 s


def test_estimate_refuses_costs_of_smaller_waves_and_missing_peaks() -> None:
    with pytest.raises(ValueError, match="100-server waves"):
        scale.estimate(replace(HAND, wave_size=10), HAND_ACCOUNT, peak_factor=3.6)
    with pytest.raises(ValueError, match="peak factor"):
        scale.estimate(HAND, HAND_ACCOUNT, peak_factor=math.nan)
    with pytest.raises(ValueError, match="per-account DRS peak factor"):
        scale.estimate(HAND, replace(HAND_ACCOUNT, drs_peak_factor=math.nan), peak_factor=3.6)
