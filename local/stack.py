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
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

from local import moto_lock, moto_speed, serverless
from local.accounts import (
    HUB_ACCOUNT,
    HUB_REGION,
    ROLE_NAMES,
    ROLE_PATH,
    SPOKE_ROLES,
    ControlClients,
    DrsTargets,
    Target,
    create_spoke_roles,
    request_access_key,
    spoke_accounts,
    spoke_targets,
    target_seed,
)
from local.drs_fake import DrsFake, DrsFakeServer
from local.faults import CloudFaults
from local.lambda_events import LambdaContext, http_event, launch_result
from local.serverless import table_properties
from local.streams import StreamDelivery
from local.sts import Caller, SpokeSts
from reconciler import runtime
from reconciler.observability import logger

if TYPE_CHECKING:
    from local.iam import RolePolicies

REGION = HUB_REGION
_RECORDED = "calls_by_function.recorded"  # request context: (index, entry) of the call's record


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
    `LocalStack.call`; "-" outside any handler): what each function's IAM role must allow. A call
    signed with a spoke role's keys is the spoke role's ("spoke:observe", "spoke:start"): its
    policy, not the function's, must allow it (`relabel`, once the request is signed)."""

    def __init__(self, caller_of: Callable[[str | None], Caller | None] | None = None) -> None:
        self.current = "-"
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # (function, "service:Operation", params)
        # (function, spoke principal) -> calls the function made with a spoke role's keys: in
        # Lambda each function's container assumes the role itself (here they share the keys)
        self.through_spokes: Counter[tuple[str, str]] = Counter()
        self._caller_of = caller_of
        self._lock = threading.Lock()

    def __call__(
        self, params: dict[str, Any], model: Any, context: dict[str, Any] | None = None, **_: Any
    ) -> None:
        entry = (self.current, f"{model.service_model.service_name}:{model.name}", dict(params))
        with self._lock:
            self.calls.append(entry)
            if context is not None:
                context[_RECORDED] = (len(self.calls) - 1, entry)

    def relabel(self, request: Any, **_: Any) -> None:
        """`request-created`, after the signer (registered last): the principal of the keys."""
        recorded = (getattr(request, "context", None) or {}).get(_RECORDED)
        if recorded is None or self._caller_of is None:
            return
        caller = self._caller_of(request_access_key(request))
        if caller is None:
            return
        index, entry = recorded
        with self._lock:
            if index < len(self.calls) and self.calls[index] is entry:
                self.calls[index] = (caller.name, entry[1], entry[2])
                self.through_spokes[(entry[0], caller.name)] += 1


class LocalStack:
    """Context manager: everything the handlers need, on this machine, with no AWS account.

    Accounts (docs/multi-account.md, local/accounts.py): the hub is 123456789012 in us-east-1;
    `spokes` are (account, Region) targets (None: `DEFAULT_SPOKES`, `()`: the hub alone). Each
    target has its own DRS fake, chosen per request from its credentials (`drs_for`; the hub's is
    `fake`), seeded apart unless `shared_ids` (then ids repeat across accounts, as AWS allows).
    Every spoke account has deploy/spoke-roles.yml's two roles, in moto's IAM and in the STS
    layer (`sts`: local/sts.py), which wants the stack's `external_id` (SPOKE_EXTERNAL_ID).
    The DRS/EC2 controls take `account=` and `region=` (default: the hub)."""

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
        spokes: Iterable[tuple[str, str]] | None = None,
        shared_ids: bool = False,
    ) -> None:
        self.log_level = log_level
        self.seed = seed
        self.table_name = table_name
        self.hub: Target = (HUB_ACCOUNT, HUB_REGION)
        self.spokes = spoke_targets(spokes)
        self.external_id = secrets.token_hex(16)
        self.fake = DrsFake(
            seed=seed,
            max_servers_per_job=max_servers_per_job,
            clock=clock,
            account=HUB_ACCOUNT,
            region=HUB_REGION,
        )
        self.drs_targets = DrsTargets(self.fake, hub_target=self.hub)
        for account, region in self.spokes:
            fake = DrsFake(
                seed=target_seed(seed, (account, region), shared_ids=shared_ids),
                max_servers_per_job=max_servers_per_job,
                clock=clock,
                account=account,
                region=region,
            )
            self.drs_targets.add((account, region), fake)
        self.sts = SpokeSts(spoke_accounts(self.spokes), self.external_id)
        self.counter = CallCounter()
        self.calls_by_function = CallsByFunction(self.sts.caller)
        self._http_functions = {f.name for f in serverless.functions().values() if f.serves_http}
        self._hidden: dict[str, Target] = {}  # instance id -> its target
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
            **spoke_environment(self.external_id),
            **({"API_PAGE_SIZE": str(page_size)} if page_size else {}),
            **(env or {}),
        }
        self._saved: dict[str, str | None] = {}
        self._mock = mock_aws()
        self._server: DrsFakeServer | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self._server = DrsFakeServer(self.fake, route=self.drs_targets.for_request)
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
            seed=self.seed,
            iam=self._denied,
            current_function=lambda: self.calls_by_function.current,
            account=HUB_ACCOUNT,
            region=HUB_REGION,
            sts=self.sts,
        )
        self.faults.install(events)
        events.register("before-call", self.counter)
        events.register("before-parameter-build", self.calls_by_function)
        events.register_last("request-created", self.calls_by_function.relabel)
        events.register("after-call.ec2.DescribeInstances", self._hide_instances)
        events.register("before-parameter-build.events.PutEvents", self._record_published)
        self.dynamodb = boto3.client("dynamodb")
        self.ec2 = boto3.client("ec2")
        self.drs = boto3.client("drs")
        self.dynamodb.create_table(TableName=self.table_name, **table_properties())
        self.control = ControlClients()  # a private session: nothing above sees its calls
        for account in spoke_accounts(self.spokes):
            create_spoke_roles(
                self.control.client("iam", account, HUB_REGION), account, external_id=self.external_id
            )
        for target in (self.hub, *self.spokes):  # DRS's terminate jobs terminate moto's instances
            self.drs_for(*target).terminate_ec2 = self._terminator(target)
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
            self._policies = role_policies(self.external_id)
        return self._policies.denied(function, service_operation, params)

    # -- DRS / EC2 truth -----------------------------------------------------------------------

    def target(self, account: str | None = None, region: str | None = None) -> Target:
        """(account, Region) of a control's `account=`/`region=`: the hub by default; a spoke
        account's Region defaults to its first target's."""
        if account is None or account == HUB_ACCOUNT:
            return (HUB_ACCOUNT, region or HUB_REGION)
        if region is None:
            region = next((r for a, r in self.spokes if a == account), None)
            if region is None:
                raise KeyError(f"{account} is not a spoke of this stack ({self.spokes})")
        return (account, region)

    def drs_for(self, account: str | None = None, region: str | None = None) -> DrsFake:
        """The DRS fake of a target (KeyError for a target the stack does not run)."""
        fake: DrsFake = self.drs_targets[self.target(account, region)]
        return fake

    def ec2_for(self, account: str | None = None, region: str | None = None) -> Any:
        """An EC2 client of the target that the fault layer, the IAM check and the counters do
        not see (the hub's is `ec2`, on the default session, as before)."""
        target = self.target(account, region)
        return self.ec2 if target == self.hub else self.control.client("ec2", *target)

    def add_servers(
        self, hostnames: list[str], *, account: str | None = None, region: str | None = None
    ) -> list[str]:
        fake = self.drs_for(account, region)
        return [fake.add_source_server(hostname=name) for name in hostnames]

    def launch(
        self,
        job_id: str,
        source_server_id: str,
        *,
        instance_type: str = "m5.large",
        hidden: bool = False,
        account: str | None = None,
        region: str | None = None,
    ) -> str:
        """Launch a real moto EC2 instance (in the target's account and Region) and tell the
        target's fake DRS the server launched onto it."""
        target = self.target(account, region)
        reply = self.ec2_for(*target).run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType=instance_type
        )
        instance = reply["Instances"][0]
        if hidden:
            self._hidden[instance["InstanceId"]] = target
        self.drs_for(*target).launch_server(
            job_id,
            source_server_id,
            ec2_instance_id=instance["InstanceId"],
            private_ip=instance.get("PrivateIpAddress"),
        )
        return str(instance["InstanceId"])

    def _terminator(self, target: Target) -> Callable[[str], None]:
        """Terminates an EC2 instance of the target with a client nothing above sees."""

        def terminate(instance_id: str) -> None:
            self.control.client("ec2", *target).terminate_instances(InstanceIds=[instance_id])

        return terminate

    def fail(
        self, job_id: str, source_server_id: str, *, account: str | None = None, region: str | None = None
    ) -> None:
        fake = self.drs_for(account, region)
        fake.set_launch_status(job_id, source_server_id, "IN_PROGRESS")
        fake.set_launch_status(job_id, source_server_id, "FAILED")

    def reveal(
        self, instance_id: str | None = None, *, account: str | None = None, region: str | None = None
    ) -> None:
        """Make hidden EC2 instances visible (all of them when no id is given; with `account`,
        all of that target's)."""
        if instance_id is not None:
            self._hidden.pop(instance_id, None)
        elif account is None and region is None:
            self._hidden.clear()
        else:
            target = self.target(account, region)
            for hidden in [i for i, where in self._hidden.items() if where == target]:
                del self._hidden[hidden]

    def _record_published(self, params: dict[str, Any], **_: Any) -> None:
        """Keep every event sent with PutEvents (moto accepts them all): detail decoded."""
        for entry in params.get("Entries", []):
            self.published.append({**entry, "Detail": json.loads(entry.get("Detail") or "{}")})

    def _hide_instances(self, parsed: dict[str, Any], **_: Any) -> None:
        if not self._hidden:
            return
        hidden = set(self._hidden)
        for reservation in parsed.get("Reservations", []):
            reservation["Instances"] = [
                i for i in reservation.get("Instances", []) if i["InstanceId"] not in hidden
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
        self,
        job_id: str,
        source_server_id: str,
        *,
        succeeded: bool = True,
        is_drill: bool = True,
        account: str | None = None,
        region: str | None = None,
    ) -> Any:
        """A Launch Result event of the target (its account, Region and source-server ARN) to
        the reconcile function, as the hub's bus delivers a spoke's forwarded event."""
        target = self.target(account, region)
        event = launch_result(
            job_id,
            source_server_id,
            succeeded=succeeded,
            is_drill=is_drill,
            account=target[0],
            region=target[1],
        )
        return self.invoke("reconcile", event)

    def sweep(self) -> Any:
        return self.invoke("sweep", {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})

    def http(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> tuple[int, dict[str, str], Any]:
        """One API request through the read (GET) or start (POST) function; JSON bodies decoded."""
        function = "start" if method == "POST" else "read"
        reply = self.invoke(function, http_event(method, path, body=body, headers=headers, query=query))
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


def spoke_environment(external_id: str) -> dict[str, str]:
    """The hub's environment for its spokes (serverless.yml's provider.environment)."""
    return {
        "HUB_ACCOUNT_ID": HUB_ACCOUNT,
        "SPOKE_EXTERNAL_ID": external_id,
        "SPOKE_ROLE_PATH": ROLE_PATH,
        "SPOKE_OBSERVE_ROLE": ROLE_NAMES["observe"],
        "SPOKE_START_ROLE": ROLE_NAMES["start"],
    }


def role_policies(external_id: str) -> RolePolicies:
    """What IAM allows each function (serverless.yml, with this stack's ExternalId as the stage's
    spokeExternalId) and each spoke role (deploy/spoke-roles.yml: "spoke:observe", "spoke:start")."""
    from local.iam import RolePolicies  # noqa: PLC0415 (loaded only when IAM is enforced)

    policies = RolePolicies.from_serverless(params={"spokeExternalId": external_id})
    if SPOKE_ROLES.is_file():
        policies = policies.including(RolePolicies.from_spoke_roles(SPOKE_ROLES))
    return policies


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
