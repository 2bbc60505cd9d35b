"""The embedded AWS server: moto over HTTP, with EC2 visibility delays, throttling, latency and atomic writes."""

from __future__ import annotations

import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local import aws_server
from local.aws_server import AwsFaults, MotoServer

AMI = "ami-12c6146b"
THREADS = 8
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})

Serve = Callable[[AwsFaults], MotoServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[MotoServer] = []

    def start(faults: AwsFaults) -> MotoServer:
        server = MotoServer(faults)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def client(server: MotoServer, service: str, config: Config | None = None) -> Any:
    """A client of its own session (sessions are not thread-safe; each thread gets one)."""
    return boto3.session.Session().client(
        service,
        region_name="us-east-1",
        endpoint_url=server.endpoint_url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=config or NO_RETRY,
    )


def error_code(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def visible(ec2: Any, *instance_ids: str) -> list[str]:
    """What DescribeInstances shows of these instances, filtered by instance-id as the reconciler asks."""
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-id", "Values": list(instance_ids)}]
    )
    return sorted(i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"])


def took(call: Callable[[], Any]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


class ManualClock:
    """`local.aws_server`'s clock in a test: visibility delays expire when the test says, not
    while a loaded machine is slow to send the next request."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    manual = ManualClock()
    monkeypatch.setattr(
        aws_server, "time", types.SimpleNamespace(monotonic=manual.monotonic, sleep=time.sleep)
    )
    return manual


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The latencies the server slept, in order (it still sleeps them)."""
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(aws_server, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    return delays


# ---------------------------------------------------------------------------- EC2 visibility


def test_a_hidden_instance_is_missing_from_describe_instances_for_a_while(
    serve: Serve, clock: ManualClock
) -> None:
    faults = AwsFaults()
    ec2 = client(serve(faults), "ec2")
    launched = ec2.run_instances(ImageId=AMI, MinCount=2, MaxCount=2, InstanceType="m5.large")
    one, two = sorted(i["InstanceId"] for i in launched["Instances"])
    faults.hide(one, 0.0)  # nothing to hide for no time
    assert faults.injected["ec2_hidden"] == 0
    faults.hide(one, 0.5)
    assert faults.injected["ec2_hidden"] == 1
    assert visible(ec2, one, two) == [two]
    assert visible(ec2, one) == []
    with pytest.raises(ClientError) as info:  # what AWS answers for an instance it does not see yet
        ec2.describe_instances(InstanceIds=[one])
    assert error_code(info)[0] == "InvalidInstanceID.NotFound"
    # only DescribeInstances is blind: the instance exists for everything else
    status = ec2.describe_instance_status(InstanceIds=[one], IncludeAllInstances=True)["InstanceStatuses"]
    assert [s["InstanceId"] for s in status] == [one]
    assert ec2.describe_instance_attribute(InstanceId=one, Attribute="instanceType")["InstanceType"] == {
        "Value": "m5.large"
    }

    clock.advance(0.4)
    assert visible(ec2, one, two) == [two]
    clock.advance(0.2)  # past the 0.5 s of hide(): visible again
    assert visible(ec2, one, two) == [one, two]
    assert faults.hidden() == set()
    # hiding did not take the instance out of its reservation: it comes back where it was
    reservations = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [one, two]}])[
        "Reservations"
    ]
    assert [r["ReservationId"] for r in reservations] == [launched["ReservationId"]]
    instances = reservations[0]["Instances"]
    assert sorted(i["InstanceId"] for i in instances) == [one, two]
    assert {i["State"]["Name"] for i in instances} == {"running"}
    assert {i["InstanceType"] for i in instances} == {"m5.large"}
    assert all(i["PrivateIpAddress"] for i in instances)


def test_a_hidden_instance_can_still_be_terminated(serve: Serve, clock: ManualClock) -> None:
    faults = AwsFaults()
    ec2 = client(serve(faults), "ec2")
    instance_id = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    faults.hide(instance_id, 0.3)
    changes = ec2.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"]
    assert [c["InstanceId"] for c in changes] == [instance_id]
    assert faults.hidden() == {instance_id}  # terminated while hidden
    clock.advance(0.3)
    described = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [instance_id]}])
    assert [i["State"]["Name"] for r in described["Reservations"] for i in r["Instances"]] == ["terminated"]


# ---------------------------------------------------------------------------- throttling


def test_throttled_describe_instances_answers_request_limit_exceeded(serve: Serve) -> None:
    faults = AwsFaults(throttle={"ec2:DescribeInstances": 1.0})
    ec2 = client(serve(faults), "ec2")
    instance_id = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    with pytest.raises(ClientError) as info:
        ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [instance_id]}])
    assert error_code(info) == ("RequestLimitExceeded", 503)
    assert faults.injected["ec2_throttled"] == 1
    # other operations go through untouched
    assert ec2.describe_vpcs()["Vpcs"]
    status = ec2.describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"]
    assert [s["InstanceId"] for s in status] == [instance_id]
    assert faults.injected["ec2_throttled"] == 1
    faults.throttle.clear()  # changeable at run time
    assert visible(ec2, instance_id) == [instance_id]


def test_a_retrying_client_gets_through_half_throttling(serve: Serve, no_retry_sleep: list[float]) -> None:
    faults = AwsFaults(throttle={"ec2:DescribeInstances": 0.5}, seed=2)
    server = serve(faults)
    instance_id = client(server, "ec2").run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    retrying = client(server, "ec2", Config(retries={"mode": "standard", "max_attempts": 4}))
    assert visible(retrying, instance_id) == [instance_id]
    throttled = faults.injected["ec2_throttled"]
    assert 1 <= throttled < 4  # seed 2 throttles the first two attempts: retries did the work
    assert len(no_retry_sleep) == throttled


# ---------------------------------------------------------------------------- latency


def test_latency_slows_only_the_named_operation(serve: Serve, slept: list[float]) -> None:
    faults = AwsFaults(latency={"ec2:DescribeInstances": (0.2, 0.2)})
    ec2 = client(serve(faults), "ec2")
    ec2.describe_vpcs()  # warm the connection and moto's backend
    assert faults.delay_for("ec2:DescribeInstances") == 0.2
    assert faults.delay_for("ec2:DescribeVpcs") == 0.0
    for _ in range(3):
        ec2.describe_vpcs()
    assert slept == []  # no latency on other operations (what they take otherwise is the machine's)
    assert took(ec2.describe_instances) >= 0.2  # the caller waited for it
    assert slept == [0.2]


# ---------------------------------------------------------------------------- atomic writes


@pytest.fixture
def tables(serve: Serve) -> Iterator[tuple[MotoServer, str]]:
    """A table on a fresh server, with the interpreter switching threads as often as it can.

    The server runs in this process, so a tiny switch interval lets moto's check-then-write be
    interrupted: without the server's lock these races lose increments and crown two winners.
    """
    server = serve(AwsFaults())
    name = f"race-{time.monotonic_ns()}"
    client(server, "dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield server, name
    finally:
        sys.setswitchinterval(interval)


def conditional_failure(error: ClientError) -> bool:
    code: str = error.response["Error"]["Code"]
    return code == "ConditionalCheckFailedException"


def test_conditional_puts_have_exactly_one_winner(tables: tuple[MotoServer, str]) -> None:
    server, table = tables
    rounds = 50
    clients = [client(server, "dynamodb") for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def racer(me: int) -> list[bool]:
        dynamodb = clients[me]
        won = []
        for round_ in range(rounds):
            barrier.wait(timeout=30)
            try:
                dynamodb.put_item(
                    TableName=table,
                    Item={"pk": {"S": f"round#{round_}"}, "winner": {"N": str(me)}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ClientError as error:
                if not conditional_failure(error):
                    raise
                won.append(False)
            else:
                won.append(True)
        return won

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(racer, range(THREADS)))
    winners = [[me for me in range(THREADS) if results[me][r]] for r in range(rounds)]
    assert [len(w) for w in winners] == [1] * rounds
    dynamodb = clients[0]
    for round_, (winner,) in enumerate(winners):
        item = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"round#{round_}"}}, ConsistentRead=True)
        assert item["Item"]["winner"] == {"N": str(winner)}


def test_an_optimistic_counter_loses_no_increment(tables: tuple[MotoServer, str]) -> None:
    server, table = tables
    increments = 25
    key = {"pk": {"S": "counter"}}
    clients = [client(server, "dynamodb") for _ in range(THREADS)]
    clients[0].put_item(TableName=table, Item={**key, "n": {"N": "0"}, "version": {"N": "0"}})

    def incrementer(me: int) -> Counter[str]:
        dynamodb = clients[me]
        tally: Counter[str] = Counter()
        for _ in range(increments):
            while True:
                item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
                n, version = int(item["n"]["N"]), int(item["version"]["N"])
                try:
                    dynamodb.update_item(
                        TableName=table,
                        Key=key,
                        UpdateExpression="SET n = :n, version = :next",
                        ConditionExpression="version = :read",
                        ExpressionAttributeValues={
                            ":n": {"N": str(n + 1)},
                            ":next": {"N": str(version + 1)},
                            ":read": {"N": str(version)},
                        },
                    )
                except ClientError as error:
                    if not conditional_failure(error):
                        raise
                    tally["conflicts"] += 1
                else:
                    tally["increments"] += 1
                    break
        return tally

    with ThreadPoolExecutor(THREADS) as pool:
        tallies = list(pool.map(incrementer, range(THREADS)))
    total = sum(tallies, Counter())
    assert total["increments"] == THREADS * increments
    item = clients[0].get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert (item["n"], item["version"]) == ({"N": "200"}, {"N": "200"})
