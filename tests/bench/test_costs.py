"""Smoke runs of the reconcile-cost and sweep-cost sections: the requests they report are the ones
the code must make, finished waves add none, and the figures latest.json needs are there."""

from __future__ import annotations

import math

from bench import reconcile_cost, sweep_cost
from bench.section import Options
from reconciler.store import INFLIGHT_SHARDS

SMOKE = Options(scale="smoke", repeat=1)


def test_growth_names_how_a_figure_grows() -> None:
    sizes = [10, 200]
    assert reconcile_cost.growth(sizes, [3, 3])["verdict"] == "constant"
    assert reconcile_cost.growth(sizes, [100, 2000])["verdict"] == "linear"
    assert reconcile_cost.growth(sizes, [100, 400])["verdict"] == "sub-linear"
    assert reconcile_cost.growth(sizes, [1, 400])["verdict"] == "super-linear"
    assert reconcile_cost.floor(200) == 3
    assert reconcile_cost.floor(201) == 4
    assert reconcile_cost.floor(1001) == 1 + 6 + 2


def test_reconcile_section_meets_the_request_floor() -> None:
    section = reconcile_cost.run(SMOKE)
    figures = section.figures
    assert section.name == "reconcile"
    sizes = figures["sizes"]
    assert sizes == list(reconcile_cost.SIZES["smoke"])
    for servers in sizes:
        f = figures["by_servers"][str(servers)]
        requests = f["requests"]
        # The floor, term by term: one DescribeJobs, a DRI page per 200 servers, a DI page per 1,000.
        assert requests["drs:DescribeJobs"] == 1
        assert requests["drs:DescribeRecoveryInstances"] == math.ceil(servers / 200)
        assert requests["ec2:DescribeInstances"] == math.ceil(servers / 1000)
        assert f["drs_ec2_requests"] == f["floor"] == reconcile_cost.floor(servers)
        assert f["floor_ratio"] == 1.0
        assert f["status"] == "COMPLETED"
        assert f["dynamodb_writes"] >= 1
        assert f["wave_item_writes"] >= 1
        assert f["item_bytes"] > 0
        assert f["wall_ms"] > 0
        assert not f["errors"]
    assert figures["calls_floor_ratio"] == 1.0
    by_servers = figures["by_servers"]
    assert by_servers[str(sizes[-1])]["item_bytes"] > by_servers[str(sizes[0])]["item_bytes"]
    assert set(figures["growth"]) == {
        "drs_ec2_requests",
        "total_requests",
        "dynamodb_writes",
        "wall_ms",
        "item_bytes",
    }
    assert figures["growth"]["drs_ec2_requests"]["verdict"] == "constant"
    races = figures["conflicts"]["by_handlers"]
    assert set(races) == {str(k) for k in reconcile_cost.HANDLERS["smoke"]}
    for handlers, race in races.items():
        assert race["correct"], race
        assert race["outcomes"].get("written") == 1
        assert all(0 <= c <= int(handlers) - 1 for c in race["conflicts_runs"])
        assert race["other_errors"] == 0
    assert races["1"]["conflicts"] == 0
    assert all(t.met for t in section.targets), section.targets


def test_sweep_section_finished_waves_cost_nothing() -> None:
    section = sweep_cost.run(SMOKE)
    figures = section.figures
    assert section.name == "sweep"
    assert figures["finished_waves"] == sweep_cost.FINISHED["smoke"]
    assert figures["finished_extra_requests"] == 0
    for size in sweep_cost.SIZES["smoke"]:
        control = figures["by_inflight"][str(size)]
        among = control["among_finished"]
        assert among["requests"] == control["requests"]
        assert among["finished_waves"] == figures["finished_waves"]
        # Per in-flight wave: its execution's Query, the wave's GetItem and one DescribeJobs (its
        # server is IN_PROGRESS, so no recovery instance or EC2 instance to describe); plus one
        # page of the inflight index per shard.
        pages = control["inflight_index_pages"]
        assert pages == INFLIGHT_SHARDS
        assert control["requests"] == {
            "drs:DescribeJobs": size,
            "dynamodb:GetItem": size,
            "dynamodb:Query": size + pages,
        }
        for run in (control, among):
            assert run["visited"] == 2 * size
            assert run["outcomes"] == {"advanced": size, "unchanged": size}
            assert run["errors"] == 0
            assert run["sweep_ms"] > 0
    assert all(t.met for t in section.targets), section.targets
