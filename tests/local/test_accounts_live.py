"""The live stack's accounts (docs/multi-account.md, "Local stack"): one DRS simulator per target,
launching its instances in its own account and Region of the moto server and putting its events on
its own account's bus in its Region, from where deploy/spoke-events.yml's rule forwards them to the
hub's bus, keeping their account, Region and resources (local/moto_events.py); the HTTP functions'
worker processes meet the stack's STS layer. (A module of its own: the LocalStacks of
test_accounts.py reset moto's in-process state, which the live stack's server shares.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from local.drs_sim import SimConfig
from local.live import LiveStack
from local.waiting import wait_until

QUICK = SimConfig(seed=7, job_start=(0.1, 0.2), prepare=(0.1, 0.3), launch=(0.2, 0.5), job_end=(0.1, 0.3))


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with LiveStack(QUICK, speed=60, latency=False) as stack:
        yield stack


def test_live_a_spoke_simulator_s_event_reaches_the_hub_s_reconcile_with_the_spoke_s_account(
    live: LiveStack,
) -> None:
    for account, region in (("222222222222", "us-east-1"), ("333333333333", "eu-west-1")):
        sim = live.drs_for(account)
        assert (sim.account, sim.region) == (account, region)
        sid = sim.add_source_server(hostname=f"evt-{account[:3]}")
        job = sim.start_recovery(sourceServers=[{"sourceServerID": sid}], isDrill=True)["job"]["jobID"]

        def delivered(job: str = job) -> list[dict[str, Any]]:
            return [
                event
                for function, event, _ in list(live.bus.results)
                if function == "reconcile" and event.get("detail", {}).get("job-id") == job
            ]

        (event,) = wait_until(delivered, what=f"{account}'s Launch Result at the hub", progress=sim.pending)
        assert (event["account"], event["region"]) == (account, region)
        assert event["resources"] == [f"arn:aws:drs:{region}:{account}:source-server/{sid}"]
        # the instance runs in the spoke's account and Region of the moto server
        (participant,) = sim.get_job(job)["participatingServers"]
        instance = sim.describe_recovery_instances()["items"][-1]["ec2InstanceID"]
        assert participant["launchStatus"] == "LAUNCHED"
        ec2 = live.control.client("ec2", account, region)
        assert instance in {
            i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
        }
        assert instance not in {
            i["InstanceId"] for r in live.ec2.describe_instances()["Reservations"] for i in r["Instances"]
        }


def test_live_all_of_one_spoke_s_events_can_be_lost(live: LiveStack) -> None:
    sim = live.drs_for("333333333333")
    live.drop_events_of("333333333333")
    try:
        sid = sim.add_source_server(hostname="lost-01")
        job = sim.start_recovery(sourceServers=[{"sourceServerID": sid}], isDrill=True)["job"]["jobID"]
        wait_until(
            lambda: sim.get_job(job)["status"] == "COMPLETED", what="the job's end", progress=sim.pending
        )
        assert sim.faults["event_dropped"] == 1
        assert not [e for f, e, _ in list(live.bus.results) if e.get("detail", {}).get("job-id") == job]
    finally:
        live.drop_events_of("333333333333", drop=False)


def test_live_workers_meet_the_sts_layer_of_the_stack(live: LiveStack) -> None:
    # POST runs in a worker process: its AssumeRole is decided (and counted) by the stack's layer
    sid = live.drs_for("222222222222").add_source_server(hostname="rev-01")
    wave = {"name": "w", "sourceServerIds": [sid], "accountId": "222222222222", "region": "us-east-1"}
    body = {"name": "revoked", "isDrill": True, "waves": [wave]}
    refused = sum(live.sts.refused.values())
    live.sts.revoke("222222222222", "observe")
    try:
        status, _, document = live.http("POST", "/executions", body=body)
    finally:
        live.sts.restore("222222222222", "observe")
    assert status == 400, document
    assert "222222222222" in json.dumps(document) and live.external_id not in json.dumps(document)
    assert sum(live.sts.refused.values()) > refused
    status, _, document = live.http("POST", "/executions", body=body)
    assert status == 202, document
    assert live.sts.assumed[("222222222222", "start")] >= 1
