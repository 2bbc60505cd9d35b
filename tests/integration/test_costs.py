"""What one GET and one reconcile cost in AWS requests, and how big a 200-server wave item is."""

from __future__ import annotations

import pytest

from local.stack import LocalStack
from reconciler.runtime import services
from reconciler.store import ITEM_LIMIT_BYTES, estimate_item_bytes, from_attrs, wave_key
from schemas.records import LaunchStatus, ServerRecord, WaveRecord, WaveStatus
from tests.conftest import complete_job, post_plan

RECONCILE_FLOOR = {
    "drs:DescribeJobs": 1,
    "drs:DescribeRecoveryInstances": 1,  # ceil(N / 200)
    "ec2:DescribeInstances": 1,  # ceil(N / 200) with an instance-id filter, 1000 per page
    "dynamodb:Query": 1,  # the byJob index: job id -> wave key
    "dynamodb:GetItem": 1,  # the wave, strongly consistent
    "dynamodb:UpdateItem": 1,  # the one conditional write
}
# What follows a terminal write of an execution's last wave (here a one-wave execution), in the
# advance function (the table's stream): the wave is read again, its Wave Completed event goes out
# and its outbox is cleared, then the execution is read and finished with writes whose size does
# not grow with the servers (reconciler/finish.py): the wave's TTL alone, then the execution
# (status, end time, TTL, Execution Completed event); that event goes out and its outbox is cleared.
FINISH = {
    "dynamodb:GetItem": 1,
    "events:PutEvents": 2,
    "dynamodb:UpdateItem": 4,
    "dynamodb:Query": 1,
}


def merged(*counts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + value
    return total


@pytest.mark.parametrize("servers", [100, 200])
def test_one_reconcile_costs_the_floor_and_one_get_costs_one_query(servers: int):
    with LocalStack(max_servers_per_job=servers) as stack:
        # Given a wave of 100 or 200 servers, every one launched and visible, the job completed
        doc = post_plan(stack, [[f"srv-{i:03d}" for i in range(servers)]])
        assert stack.counter.calls["drs:DescribeSourceServers"] == 1  # ceil(N / 200) at creation
        job = doc["waves"][0]["jobId"]
        for server in doc["waves"][0]["servers"]:
            stack.launch(job, server["sourceServerId"])
        complete_job(stack, job)
        # When one Launch Result event is reconciled
        stack.counter.reset()
        assert stack.deliver(job, doc["waves"][0]["servers"][0]["sourceServerId"]) == {"outcome": "written"}
        # Then it made exactly the floor of requests, plus finishing the (one-wave) execution
        assert dict(stack.counter.calls) == merged(RECONCILE_FLOOR, FINISH)
        document = stack.get_execution(doc["executionId"])
        assert document["waves"][0]["status"] == "COMPLETED"
        # And a GET is one Query and nothing else
        stack.counter.reset()
        stack.get_execution(doc["executionId"])
        assert dict(stack.counter.calls) == {"dynamodb:Query": 1}


def test_a_200_server_wave_fits_the_item_limit_with_margin():
    with LocalStack(max_servers_per_job=200) as stack:
        # Given a real 200-server wave, fully recovered
        doc = post_plan(stack, [[f"host-{i:03d}.example.internal" for i in range(200)]])
        job = doc["waves"][0]["jobId"]
        for server in doc["waves"][0]["servers"]:
            stack.launch(job, server["sourceServerId"], instance_type="m6i.2xlarge")
        complete_job(stack, job)
        stack.sweep()
        key = wave_key(doc["executionId"], 1).as_key()
        raw = stack.dynamodb.get_item(TableName=stack.table_name, Key=key)["Item"]
        real = estimate_item_bytes(from_attrs(raw))
        assert from_attrs(raw)["status"] == "COMPLETED"
        # And a worst case: 255-character hostnames and a 300-character error on every server
        store = services().store
        worst = WaveRecord(
            execution_id="0" * 36,
            wave_number=1,
            name="n" * 128,
            status=WaveStatus.PARTIAL,
            is_drill=True,
            job_id="drsjob-" + "x" * 17,
            servers=tuple(
                ServerRecord(
                    source_server_id=f"s-{i:017d}",
                    hostname="h" * 255,
                    launch_status=LaunchStatus.LAUNCHED,
                    recovery_instance_id=f"i-{i:017x}",
                    recovered_instance_id=f"i-{i:017x}",
                    instance_type="u-24tb1.224xlarge",
                    private_ip="255.255.255.255",
                    launch_time="2026-11-26T10:00:00.000Z",
                    ec2_state="shutting-down",
                    error="e" * 300,
                )
                for i in range(200)
            ),
            version=10**9,
            created_at="2026-11-26T10:00:00.000Z",
            updated_at="2026-11-26T10:00:00.000Z",
        )
        worst_size = store.wave_item_bytes(worst)
    # Then both stay far below DynamoDB's 400 KB (the store refuses anything over 350 KB)
    assert real < ITEM_LIMIT_BYTES * 0.25, real
    assert worst_size < ITEM_LIMIT_BYTES * 0.5, worst_size
