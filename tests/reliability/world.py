"""The world the state machine drives: our real handlers on the embedded stack, plus fault levers.

`World` wraps a `LocalStack` (moto in-process behind the global lock, the DRS fake over HTTP)
with what the stateful test needs to play the cloud's faults deterministically, in one thread:
a manual clock shared by the handlers and DRS, EC2 throttling inside botocore's retry loop, a
crash right after a DynamoDB write landed, a second handler run in the middle of the first
(just before its write, the worst moment), and a count of the writes DynamoDB committed per item
so the invariant checks can tell a lost or doubled version from a clean one.

The cloud's other failures come from the stack's `CloudFaults` (`stack.faults`, inside botocore):
`arm_cloud` arms the next N calls of some operations with one kind (a lost answer after commit,
a 5xx, throttling, a transaction conflict, a connect timeout, the concurrent-job quota) and
`end_step` disarms whatever did not fire, so a step's faults never leak into the next step (or
into the invariant checks' own reads) and a shrunk program replays. IAM is checked on every call
a function makes (`enforce_iam`): a call its role would not allow is refused, and counted as the
`access_denied` fault, which the state machine treats as a violation.
Commits are counted per HTTP attempt (`response-received`), not per API call: a write whose
answer was lost committed on its first attempt and fails its own condition on the re-send, and a
transaction re-sent with its ClientRequestToken is answered from the token without committing
again (`CloudFaults.replayed`).
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
WRITE_OPERATIONS = ("UpdateItem", "PutItem", "TransactWriteItems", "DeleteItem")


class CrashAfterWrite(Exception):
    """The function died (timeout, OOM) right after DynamoDB accepted its write."""


# A fixed start: the sweep's first shard and every time the handlers compute follow the clock,
# so a program replays the same way in any session (not only within the one that found it).
START = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


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
        # Three accounts (the hub and two spokes, one in another Region), their fakes seeded alike
        # so every run repeats job ids across accounts: routing by (account, Region, job id) is
        # exercised by every event (docs/multi-account.md).
        self.stack = LocalStack(
            clock=self.clock,
            log_level="ERROR",
            shared_ids=True,
            # One sweep thread: every step is reproducible. The last event's reconcile re-checks
            # DRS twice while time passes (the clock moves by each wait; DRS does not, as nothing
            # runs between the checks), so the checks that reuse an earlier look meet every fault.
            env={"SWEEP_CONCURRENCY": "1", "SETTLE_SECONDS": "2", "SETTLE_INTERVAL_SECONDS": "1"},
        )
        self.ec2_throttles = 0
        self.ec2_throttled = 0  # throttles botocore actually met
        self.drs_throttled = 0  # the DRS fake's own throttles (ThrottlingException) actually met
        self._drs_armed = 0
        self._replays_seen = 0
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
        # Every call a function makes must be one its role allows (local/iam.py's RolePolicies,
        # wired by LocalStack): a refused call fires `access_denied`, a violation.
        self.stack.faults.enforce_iam = True
        events = _session_events()
        events.register_first("before-send.ec2.DescribeInstances", self._ec2_throttle)
        for operation in WRITE_OPERATIONS:
            events.register(f"provide-client-params.dynamodb.{operation}", self._remember_params)
            events.register(f"before-call.dynamodb.{operation}", self._before_write)
            events.register(f"response-received.dynamodb.{operation}", self._committed)
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
        for target in self.targets():
            account, region = target
            stack.drs_for(account, region).__init__(  # type: ignore[misc]
                seed=seed, clock=self.clock, account=account, region=region
            )
        stack.reveal()
        stack.published.clear()
        stack.dynamodb.delete_table(TableName=stack.table_name)
        stack.dynamodb.create_table(TableName=stack.table_name, **table_properties())
        self.ec2_throttles = self.ec2_throttled = 0
        self.drs_throttled = self._drs_armed = 0
        stack.faults.clear()  # nothing armed, nothing fired: this run's faults are counted alone
        self._replays_seen = 0
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

    def arm_cloud(self, kind: str, operations: tuple[str, ...], times: int) -> None:
        """The next `times` calls of each of `operations` ("service:Operation") meet `kind`
        (`local.faults` kinds; counted only when they fire). Disarmed by `end_step`."""
        for operation in operations:
            self.stack.faults.arm(kind, operation, times=times)

    def targets(self) -> list[tuple[str, str]]:
        """(account, Region) of the hub and every spoke, in order."""
        return [self.stack.hub, *self.stack.spokes]

    def fakes(self) -> list[Any]:
        return [self.stack.drs_for(*target) for target in self.targets()]

    def throttle_drs(self, operation: str, times: int) -> None:
        """Every account's DRS answers its own ThrottlingException to the next `times` calls of
        `operation` (counted when met)."""
        for fake in self.fakes():
            fake.throttle_next(operation, times)
            self._drs_armed += times

    def end_step(self) -> None:
        """Whatever was armed for this step and did not fire is disarmed (and not counted)."""
        self.stack.faults.disarm()
        left = sum(sum(fake._throttles.values()) for fake in self.fakes())
        self.drs_throttled += self._drs_armed - left
        self._drs_armed = 0
        for fake in self.fakes():
            fake._throttles.clear()
        self.ec2_throttles = 0
        self.crash_armed = False
        self.interleave_with = None

    def cloud_faults_fired(self) -> Counter[tuple[str, str]]:
        """(kind, "service:Operation") -> how many times it fired since the last reset."""
        return Counter(self.stack.faults.fired_by_operation)

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

    def _committed(
        self, response_dict: dict[str, Any] | None, context: dict[str, Any], event_name: str, **_: Any
    ) -> None:
        """One HTTP attempt of a write answered 200: DynamoDB committed it (unless the fault layer
        answered a re-sent transaction from its token: that committed nothing new)."""
        if response_dict is None or response_dict.get("status_code") != 200:
            return
        operation = event_name.rsplit(".", 1)[-1]
        replayed = self.stack.faults.replayed
        if operation == "TransactWriteItems" and replayed > self._replays_seen:
            self._replays_seen = replayed
            return
        params = context.get("world_params") or {}
        if operation == "TransactWriteItems":
            for item in params.get("TransactItems", []):
                for action in item.values():
                    self._count(action.get("Key") or _key_of(action.get("Item")))
        else:
            self._count(params.get("Key") or _key_of(params.get("Item")))

    def _after_write(self, http_response: Any, model: Any, **_: Any) -> None:
        if http_response.status_code != 200:
            return
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
