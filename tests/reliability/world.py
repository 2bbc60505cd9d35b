"""The world the state machine drives: our real handlers on the embedded stack, plus fault levers.

`World` wraps a `LocalStack` (moto in-process behind the global lock, the DRS fake over HTTP)
with what the stateful test needs to play the cloud's faults deterministically, in one thread:
a manual clock shared by the handlers and DRS, EC2 throttling inside botocore's retry loop, a
crash right after a DynamoDB write landed, a second handler run in the middle of the first
(just before its write, the worst moment), and a count of accepted writes per item so the
invariant checks can tell a lost or doubled version from a clean one.
"""

from __future__ import annotations

import random
import types
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.endpoint
from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import MockRawResponse

from local.serverless import table_properties
from local.stack import LocalStack
from reconciler import runtime

EC2_THROTTLE_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>RequestLimitExceeded</Code>'
    b"<Message>Request limit exceeded.</Message></Error></Errors><RequestID>throttled</RequestID></Response>"
)
WRITE_OPERATIONS = ("UpdateItem", "PutItem", "TransactWriteItems")


class CrashAfterWrite(Exception):
    """The function died (timeout, OOM) right after DynamoDB accepted its write."""


START = datetime.now(UTC).replace(microsecond=0)


class ManualClock:
    """The handlers' and DRS's clock; only `advance` moves it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class World:
    """A LocalStack plus deterministic fault levers (see the module docstring)."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.stack = LocalStack(
            clock=self.clock,
            log_level="ERROR",
            # One sweep thread: every step is reproducible. The last event's reconcile re-checks
            # DRS twice while time passes (the clock moves by each wait; DRS does not, as nothing
            # runs between the checks), so the checks that reuse an earlier look meet every fault.
            env={"SWEEP_CONCURRENCY": "1", "SETTLE_SECONDS": "2", "SETTLE_INTERVAL_SECONDS": "1"},
        )
        self.ec2_throttles = 0
        self.ec2_throttled = 0  # throttles botocore actually met
        self.crash_armed = False
        self.crashes = 0
        self.interleave_with: Callable[[], Any] | None = None
        self.interleaved = 0
        self.accepted_writes: Counter[tuple[str, str]] = Counter()
        self._ids = random.Random(0)
        self._saved_clock = runtime.CLOCK
        self._saved_new_id = runtime.NEW_ID
        self._saved_sleep = runtime.SLEEP
        self._saved_time = botocore.endpoint.time

    def __enter__(self) -> World:
        runtime.CLOCK = self.clock
        runtime.NEW_ID = self.new_id
        runtime.SLEEP = self.clock.advance
        botocore.endpoint.time = types.SimpleNamespace(sleep=lambda seconds: None)  # retries, no waits
        self.stack.__enter__()
        events = _session_events()
        events.register_first("before-send.ec2.DescribeInstances", self._ec2_throttle)
        for operation in WRITE_OPERATIONS:
            events.register(f"provide-client-params.dynamodb.{operation}", self._remember_params)
            events.register(f"before-call.dynamodb.{operation}", self._before_write)
            events.register(f"after-call.dynamodb.{operation}", self._after_write)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stack.__exit__(None, None, None)
        finally:
            runtime.CLOCK = self._saved_clock
            runtime.NEW_ID = self._saved_new_id
            runtime.SLEEP = self._saved_sleep
            botocore.endpoint.time = self._saved_time
            runtime.reset()

    def reset(self, *, seed: int) -> None:
        """A fresh world for the next run, on the same stack (built once: clients, models and
        the DRS server are what cost time; moto's table and the fake's state are cheap to renew)."""
        self.clock.now = START
        self._ids = random.Random(seed)
        stack = self.stack
        stack.fake.__init__(seed=seed, clock=self.clock)  # type: ignore[misc]
        stack.reveal()
        stack.published.clear()
        stack.dynamodb.delete_table(TableName=stack.table_name)
        stack.dynamodb.create_table(TableName=stack.table_name, **table_properties())
        self.ec2_throttles = self.ec2_throttled = 0
        self.crash_armed, self.crashes = False, 0
        self.interleave_with, self.interleaved = None, 0
        self.accepted_writes.clear()
        # Fresh clients: botocore's standard retry mode keeps a retry quota per client, and a
        # quota drained by an earlier run would make this one retry differently on replay.
        runtime.reset()

    def new_id(self) -> str:
        """Execution ids drawn from the run's seed: the same run replays the same ids (the sweep's
        order over the inflight shards depends on them)."""
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    # ------------------------------------------------------------------ fault levers

    def _ec2_throttle(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.ec2_throttles <= 0:
            return None
        self.ec2_throttles -= 1
        self.ec2_throttled += 1
        return AWSResponse(request.url, 503, {}, MockRawResponse(EC2_THROTTLE_BODY))

    @staticmethod
    def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["world_params"] = params

    def _before_write(self, **_: Any) -> None:
        other, self.interleave_with = self.interleave_with, None
        if other is not None:  # the other handler runs now, between our read and our write
            self.interleaved += 1
            other()

    def _after_write(self, http_response: Any, context: dict[str, Any], model: Any, **_: Any) -> None:
        if http_response.status_code != 200:
            return
        params = context.get("world_params") or {}
        if model.name == "TransactWriteItems":
            for item in params.get("TransactItems", []):
                for action in item.values():
                    self._count(action.get("Key") or _key_of(action.get("Item")))
        else:
            self._count(params.get("Key") or _key_of(params.get("Item")))
        if self.crash_armed:
            self.crash_armed = False
            self.crashes += 1
            raise CrashAfterWrite(f"{model.name} landed, then the function died")

    def _count(self, key: dict[str, Any] | None) -> None:
        if key:
            self.accepted_writes[(key["pk"]["S"], key["sk"]["S"])] += 1

    # ------------------------------------------------------------------ reading the table

    def items(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every item of the table, raw, by (pk, sk); read around the fault levers."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        pages = self.stack.dynamodb.get_paginator("scan").paginate(
            TableName=self.stack.table_name, ConsistentRead=True
        )
        for page in pages:
            for item in page["Items"]:
                found[(item["pk"]["S"], item["sk"]["S"])] = item
        return found


def _key_of(item: dict[str, Any] | None) -> dict[str, Any] | None:
    return {"pk": item["pk"], "sk": item["sk"]} if item else None


def _session_events() -> Any:
    import boto3  # noqa: PLC0415 (the stack replaces the default session on enter)

    assert boto3.DEFAULT_SESSION is not None
    return boto3.DEFAULT_SESSION.events
