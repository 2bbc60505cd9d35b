"""DynamoDB's transaction limits (100 items, 4 MB) hold at the plan maximum: 50 waves of 200 servers.

Creating an execution is one transaction (at most 51 small items); finishing one must not be:
with every server's EC2 details the waves weigh more than 4 MB together, so the finish writes
each wave's TTL alone (a request whose size does not grow with the servers) and then the
execution. Every DynamoDB write request the functions send is recorded and measured here.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from local.stack import LocalStack
from reconciler.plans import MAX_WAVES
from reconciler.runtime import services
from reconciler.store import wave_key
from schemas.records import LaunchStatus, ServerRecord, WaveStatus

SERVERS = 200
TRANSACTION_ITEMS = 100
TRANSACTION_BYTES = 4 * 1024 * 1024
# A wave's TTL stamp or the execution item: a few hundred bytes, whatever the number of servers.
SMALL_WRITE_BYTES = 8 * 1024


class Writes:
    """Every DynamoDB write request (`before-call`), with its action count and wire size."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int, int]] = []  # (operation, items, bytes)

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name in ("TransactWriteItems", "UpdateItem", "PutItem"):
            body = params["body"]
            raw = body if isinstance(body, bytes) else str(body).encode()
            items = len(json.loads(raw).get("TransactItems", [])) if raw else 0
            self.requests.append((model.name, items, len(raw)))


def recovered(server: ServerRecord, i: int) -> ServerRecord:
    return server.model_copy(
        update={
            "launch_status": LaunchStatus.LAUNCHED,
            "recovery_instance_id": f"i-{i:017x}",
            "recovered_instance_id": f"i-{i + 1:017x}",
            "instance_type": "m6i.2xlarge",
            "private_ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
            "launch_time": "2026-11-26T10:00:00.000Z",
            "ec2_state": "running",
        }
    )


def test_creating_and_finishing_an_execution_at_the_plan_maximum_stays_inside_dynamodb_limits() -> None:
    with LocalStack(max_servers_per_job=SERVERS) as stack:
        writes = Writes()
        # Given a plan at the maximum: 50 waves of 200 servers, realistic fully qualified hostnames
        waves = [
            {
                "name": f"wave {n:02d}",
                "sourceServerIds": stack.add_servers(
                    [
                        f"app-{n:02d}-{i:03d}.payments-settlement.prod.eu-west-1.dc-frankfurt-az2.blue-green-cluster-b.rack-0042-core.example-corp.internal"
                        for i in range(SERVERS)
                    ]
                ),
                "pauseBeforeWave": True,  # nothing starts: this test is about the records
            }
            for n in range(MAX_WAVES)
        ]
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-call.dynamodb", writes)
        services.cache_clear()  # clients built after the recorder is registered
        status, _, document = stack.http(
            "POST", "/executions", body={"name": "max", "isDrill": True, "waves": waves}
        )
        assert status == 202, document
        execution_id = document["executionId"]
        # Then its creation is one transaction inside both limits
        created = [r for r in writes.requests if r[0] == "TransactWriteItems"]
        assert len(created) == 1 and created[0][1] == MAX_WAVES + 1
        assert created[0][2] < TRANSACTION_BYTES

        # Given every wave then recovered every server, with its EC2 details (written as the
        # reconciler would: one versioned write a wave)
        store = services().store
        total = 0
        for number in range(1, MAX_WAVES + 1):
            wave = store.get_wave(wave_key(execution_id, number))
            assert wave is not None
            done = wave.model_copy(
                update={
                    "status": WaveStatus.COMPLETED,
                    "job_id": f"drsjob-{number:017d}",
                    "start_time": "2026-11-26T10:00:00.000Z",
                    "end_time": f"2026-11-26T11:{number:02d}:00.000Z",
                    "servers": tuple(recovered(s, number * 1000 + i) for i, s in enumerate(wave.servers)),
                    "announced": True,
                }
            )
            total += store.wave_item_bytes(store.write_wave(done, updated_at="2026-11-26T12:00:00.000Z"))
        assert total > TRANSACTION_BYTES  # the waves together weigh more than one transaction may

        # When the execution is finished
        writes.requests.clear()
        finished = services().executions.advance(execution_id)
        assert finished is not None and finished.status == "COMPLETED"
        # Then no request came near a limit: no transaction over 100 items or 4 MB, and every
        # write was small (its size does not grow with the servers)
        assert writes.requests, "the finish wrote nothing"
        for operation, items, size in writes.requests:
            if operation == "TransactWriteItems":
                assert items <= TRANSACTION_ITEMS and size < TRANSACTION_BYTES, (operation, items, size)
            assert size < SMALL_WRITE_BYTES, (operation, items, size)
        # And every wave carries the execution's TTL
        stored = store.get_execution(execution_id)
        assert stored is not None
        execution, final_waves = stored
        assert execution.expires_at is not None
        assert {w.expires_at for w in final_waves} == {execution.expires_at}
