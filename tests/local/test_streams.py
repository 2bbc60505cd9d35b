"""The local stream delivery behaves as Lambda's event source mapping does for the tests to mean
anything: filtered by serverless.yml's patterns, oldest first, a failed batch retried before
anything newer and set aside after `maximumRetryAttempts`, and a recreated table read anew."""

from __future__ import annotations

from typing import Any

import pytest

from local.serverless import stream_subscriptions, table_properties
from local.stack import LocalStack
from local.streams import StreamDelivery

TABLE = "streams-test"


class Recorder:
    """A stand-in function: records batches, fails the first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[list[dict[str, Any]]] = []

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        assert function == "advance"
        self.batches.append(event["Records"])
        if self.failures:
            self.failures -= 1
            raise RuntimeError("injected")
        return {"batchItemFailures": []}


def put_wave(stack: LocalStack, number: int, status: str, *, pending_event: bool) -> None:
    item = {
        "pk": {"S": "EXEC#e"},
        "sk": {"S": f"WAVE#{number:04d}"},
        "itemType": {"S": "WAVE"},
        "status": {"S": status},
    }
    if pending_event:
        item["inflight"] = {"S": "1"}
    stack.dynamodb.put_item(TableName=TABLE, Item=item)


@pytest.fixture
def table(stack: LocalStack) -> LocalStack:
    stack.dynamodb.create_table(TableName=TABLE, **table_properties())
    return stack


def test_the_advance_function_subscribes_to_the_table_stream():
    (subscription,) = stream_subscriptions()
    assert subscription.function == "advance"
    assert subscription.retries == 10
    assert subscription.filters


def test_only_terminal_waves_with_a_pending_event_are_delivered_in_order(table: LocalStack):
    function = Recorder()
    delivery = StreamDelivery(TABLE, function)
    put_wave(table, 1, "LAUNCHING", pending_event=True)
    put_wave(table, 1, "COMPLETED", pending_event=True)
    put_wave(table, 2, "FAILED", pending_event=True)
    put_wave(table, 1, "COMPLETED", pending_event=False)  # its event published: no wake-up
    assert delivery.drain() == 2
    (batch,) = function.batches
    assert [(r["dynamodb"]["Keys"]["sk"]["S"], r["dynamodb"]["NewImage"]["status"]["S"]) for r in batch] == [
        ("WAVE#0001", "COMPLETED"),
        ("WAVE#0002", "FAILED"),
    ]
    assert isinstance(batch[0]["dynamodb"]["ApproximateCreationDateTime"], int)
    assert delivery.drain() == 0 and delivery.backlog() == 0


def test_a_failed_batch_is_retried_first_then_set_aside(table: LocalStack):
    function = Recorder(failures=3)
    delivery = StreamDelivery(TABLE, function)
    delivery.max_retries = 2
    put_wave(table, 1, "COMPLETED", pending_event=True)
    with pytest.raises(RuntimeError):
        delivery.drain(raise_failures=True)
    assert delivery.backlog() == 1  # still first in line
    assert delivery.drain() == 0  # second failure, retried again
    assert delivery.drain() == 0  # third failure: set aside
    assert delivery.backlog() == 0
    put_wave(table, 2, "COMPLETED", pending_event=True)
    assert delivery.drain() == 1  # the newer record goes through
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for b in function.batches for r in b] == [
        "WAVE#0001",
        "WAVE#0001",
        "WAVE#0001",
        "WAVE#0002",
    ]
    ((name, event, _),) = delivery.failures
    assert name == "advance" and len(event["Records"]) == 1


def test_a_recreated_table_is_read_from_its_new_stream(table: LocalStack):
    function = Recorder()
    delivery = StreamDelivery(TABLE, function)
    put_wave(table, 1, "COMPLETED", pending_event=True)
    assert delivery.drain() == 1
    table.dynamodb.delete_table(TableName=TABLE)
    table.dynamodb.create_table(TableName=TABLE, **table_properties())
    put_wave(table, 1, "COMPLETED", pending_event=True)
    assert delivery.drain() == 1
