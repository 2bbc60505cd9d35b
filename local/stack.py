"""The embedded stack: moto in-process, the DRS fake over HTTP, and our table from serverless.yml.

Used by the tests and by `make demo`. The environment is pointed at the fakes the way a real
deployment would be configured (`TABLE_NAME`, `AWS_ENDPOINT_URL_DRS`), so the handlers run
unmodified. The table is created from `serverless.yml`'s `resources`, never from a second copy.
The stack also plays DRS/EC2 truth for tests (launch a server onto a real moto instance, hide an
instance from DescribeInstances for a while) and counts every AWS API call by service. Its
`faults` (`local.faults.CloudFaults`, nothing armed by default) make the handlers' clients meet
AWS's failures: lost answers, 5xx, throttling, transaction conflicts, timeouts, IAM refusals.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

from local import moto_lock, moto_speed, serverless
from local.drs_fake import DrsFake, DrsFakeServer
from local.faults import CloudFaults
from local.lambda_events import LambdaContext, http_event, launch_result
from local.serverless import table_properties
from local.streams import StreamDelivery
from reconciler import runtime
from reconciler.observability import logger

if TYPE_CHECKING:
    from local.iam import RolePolicies

REGION = "us-east-1"


class CallCounter:
    """Counts AWS API calls (`before-call` events) by service and operation."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    def by_service(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for key, count in self.calls.items():
            totals[key.split(":")[0]] += count
        return totals

    def reset(self) -> None:
        self.calls.clear()


class CallsByFunction:
    """Every AWS API call with its parameters, by the function whose handler made it (set by
    `LocalStack.call`; "-" outside any handler): what each function's IAM role must allow."""

    def __init__(self) -> None:
        self.current = "-"
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # (function, "service:Operation", params)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((self.current, f"{model.service_model.service_name}:{model.name}", dict(params)))


class LocalStack:
    """Context manager: everything the handlers need, on this machine, with no AWS account."""

    def __init__(
        self,
        *,
        seed: int = 0,
        page_size: int | None = None,
        ec2_grace_seconds: int = 900,
        max_servers_per_job: int = 100,
        table_name: str = "drs-wave-reconciler-local",
        log_level: str = "WARNING",
        clock: Callable[[], datetime] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_level = log_level
        self.seed = seed
        self.table_name = table_name
        self.fake = DrsFake(seed=seed, max_servers_per_job=max_servers_per_job, clock=clock)
        self.counter = CallCounter()
        self.calls_by_function = CallsByFunction()
        self._http_functions = {f.name for f in serverless.functions().values() if f.serves_http}
        self._hidden: set[str] = set()
        self._policies: RolePolicies | None = None
        self.published: list[dict[str, Any]] = []  # our own events EventBridge accepted, in order
        self._env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "TABLE_NAME": table_name,
            "EC2_GRACE_SECONDS": str(ec2_grace_seconds),
            "MAX_SERVERS_PER_WAVE": str(max_servers_per_job),
            # Tests drive DRS by hand between calls, so a reconcile waiting for DRS to complete a
            # job would only sleep; tests of that wait turn it on (tests/integration/test_settle.py).
            "SETTLE_SECONDS": "0",
            "POWERTOOLS_SERVICE_NAME": "drs-reconciler",
            "POWERTOOLS_METRICS_NAMESPACE": "DrsReconciler",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            **({"API_PAGE_SIZE": str(page_size)} if page_size else {}),
            **(env or {}),
        }
        self._saved: dict[str, str | None] = {}
        self._mock = mock_aws()
        self._server: DrsFakeServer | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self._server = DrsFakeServer(self.fake)
        self._env["AWS_ENDPOINT_URL_DRS"] = self._server.endpoint_url
        for key, value in self._env.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value
        moto_lock.install()
        moto_speed.install()
        logger.setLevel(self.log_level)
        self._mock.start()
        boto3.setup_default_session()
        events = boto3.DEFAULT_SESSION.events
        # Before any client is built: a client copies the session's emitter when it is created.
        # IAM is checked only once a test sets `stack.faults.enforce_iam = True`.
        self.faults = CloudFaults(
            seed=self.seed, iam=self._denied, current_function=lambda: self.calls_by_function.current
        )
        self.faults.install(events)
        events.register("before-call", self.counter)
        events.register("before-parameter-build", self.calls_by_function)
        events.register("after-call.ec2.DescribeInstances", self._hide_instances)
        events.register("before-parameter-build.events.PutEvents", self._record_published)
        self.dynamodb = boto3.client("dynamodb")
        self.ec2 = boto3.client("ec2")
        self.drs = boto3.client("drs")
        self.dynamodb.create_table(TableName=self.table_name, **table_properties())
        self.stream = StreamDelivery(self.table_name, self.call, region=REGION)
        self._reset_runtime()
        self.counter.reset()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._mock.stop()
        if self._server is not None:
            self._server.stop()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        boto3.DEFAULT_SESSION = None
        self._reset_runtime()

    @staticmethod
    def _reset_runtime() -> None:
        runtime.reset()

    def _denied(self, function: str, service_operation: str, params: dict[str, Any]) -> list[str]:
        """The IAM actions `function`'s role (serverless.yml) lacks for this call (read once, on
        the first call checked: most stacks never enforce IAM)."""
        if self._policies is None:
            from local.iam import RolePolicies  # noqa: PLC0415 (loaded only when IAM is enforced)

            self._policies = RolePolicies.from_serverless()
        return self._policies.denied(function, service_operation, params)

    # -- DRS / EC2 truth -----------------------------------------------------------------------

    def add_servers(self, hostnames: list[str]) -> list[str]:
        return [self.fake.add_source_server(hostname=name) for name in hostnames]

    def launch(
        self, job_id: str, source_server_id: str, *, instance_type: str = "m5.large", hidden: bool = False
    ) -> str:
        """Launch a real moto EC2 instance and tell the fake DRS the server launched onto it."""
        reply = self.ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType=instance_type
        )
        instance = reply["Instances"][0]
        if hidden:
            self._hidden.add(instance["InstanceId"])
        self.fake.launch_server(
            job_id,
            source_server_id,
            ec2_instance_id=instance["InstanceId"],
            private_ip=instance.get("PrivateIpAddress"),
        )
        return str(instance["InstanceId"])

    def fail(self, job_id: str, source_server_id: str) -> None:
        self.fake.set_launch_status(job_id, source_server_id, "IN_PROGRESS")
        self.fake.set_launch_status(job_id, source_server_id, "FAILED")

    def reveal(self, instance_id: str | None = None) -> None:
        """Make hidden EC2 instances visible (all of them when no id is given)."""
        if instance_id is None:
            self._hidden.clear()
        else:
            self._hidden.discard(instance_id)

    def _record_published(self, params: dict[str, Any], **_: Any) -> None:
        """Keep every event sent with PutEvents (moto accepts them all): detail decoded."""
        for entry in params.get("Entries", []):
            self.published.append({**entry, "Detail": json.loads(entry.get("Detail") or "{}")})

    def _hide_instances(self, parsed: dict[str, Any], **_: Any) -> None:
        if not self._hidden:
            return
        for reservation in parsed.get("Reservations", []):
            reservation["Instances"] = [
                i for i in reservation.get("Instances", []) if i["InstanceId"] not in self._hidden
            ]
        parsed["Reservations"] = [r for r in parsed.get("Reservations", []) if r["Instances"]]

    # -- invoking the handlers the way AWS does --------------------------------------------------

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Call `handlers.<function>.handler(event, context)`, then deliver what its writes put on
        the table's stream (as Lambda would, moments later), even when it failed. A failure of
        that delivery is raised here, and the failed records are retried by the next call."""
        try:
            result = self.call(function, event)
        except BaseException:
            self.stream.drain()
            raise
        self.stream.drain(raise_failures=True)
        return result

    def call(self, function: str, event: dict[str, Any]) -> Any:
        """Call one handler, nothing after it."""
        module = importlib.import_module(f"handlers.{function}")
        http = function in self._http_functions
        outer, self.calls_by_function.current = self.calls_by_function.current, function
        try:
            with serverless.HTTP_INVOCATION_LOCK if http else contextlib.nullcontext():
                return module.handler(event, LambdaContext(function_name=function))
        finally:
            self.calls_by_function.current = outer

    def deliver(
        self, job_id: str, source_server_id: str, *, succeeded: bool = True, is_drill: bool = True
    ) -> Any:
        return self.invoke(
            "reconcile", launch_result(job_id, source_server_id, succeeded=succeeded, is_drill=is_drill)
        )

    def sweep(self) -> Any:
        return self.invoke("sweep", {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})

    def http(
        self, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """One API request through the read (GET) or start (POST) function; JSON bodies decoded."""
        function = "start" if method == "POST" else "read"
        reply = self.invoke(function, http_event(method, path, body=body, headers=headers))
        text = reply.get("body") or ""
        try:
            decoded: Any = json.loads(text) if text else None
        except ValueError:
            decoded = text
        return int(reply["statusCode"]), dict(reply.get("headers") or {}), decoded

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        status, _, body = self.http("GET", f"/executions/{execution_id}")
        if status != 200:
            raise AssertionError(f"GET /executions/{execution_id} answered {status}: {body}")
        document: dict[str, Any] = body
        return document


def snapshot(stack: LocalStack) -> list[dict[str, Any]]:
    """Every item of the stack's table, raw (for restoring the same starting point later)."""
    items: list[dict[str, Any]] = []
    for page in stack.dynamodb.get_paginator("scan").paginate(TableName=stack.table_name):
        items.extend(page["Items"])
    return items


def restore(stack: LocalStack, items: list[dict[str, Any]]) -> None:
    """Replace the table's content with `items` (as taken by `snapshot`)."""
    for item in snapshot(stack):
        stack.dynamodb.delete_item(TableName=stack.table_name, Key={"pk": item["pk"], "sk": item["sk"]})
    for item in items:
        stack.dynamodb.put_item(TableName=stack.table_name, Item=item)
