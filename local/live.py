"""The live local stack: the whole system running on this machine, with no AWS account.

moto's server on loopback (DynamoDB, EC2, EventBridge, SQS) behind a fault layer; the DRS
simulator on loopback, launching real moto instances and putting Launch Result events on the
bus; serverless.yml's rules, schedule and routes wired to the unmodified handlers; the status
page. The environment is set as a deployment would set it (`AWS_ENDPOINT_URL` to moto,
`AWS_ENDPOINT_URL_DRS` to the simulator, `TABLE_NAME`), so the handlers cannot tell.

The handlers' own boto3 clients (the default session's) also carry the cloud's fault layer,
`local.faults.CloudFaults` (`stack.cloud`, nothing armed unless asked): `arm_fault_profile`
arms what the demo's `--faults` adds to the simulator's and the embedded AWS's faults. IAM is
checked on every call a function makes (`iam=True`, the default): a call its role in
serverless.yml does not allow is refused as AWS would, and counted as `access_denied`.

Accounts (docs/multi-account.md, local/accounts.py): the hub 123456789012 in us-east-1 and the
`spokes` targets (default: 222222222222 in us-east-1, 333333333333 in eu-west-1), each with its own
DRS simulator (`sims`; `sim` is the hub's), chosen per request from its credentials. A spoke's
simulator launches its instances in its account and Region of the moto server and puts its events
on that account's default bus in its Region, whose deploy/spoke-events.yml rule forwards them to
the hub's bus (moto patched to keep their account, Region and resources: local/moto_events.py);
`drop_events_of` loses all of one target's. deploy/spoke-roles.yml's roles exist in every spoke
account, and the STS layer (`sts`, local/sts.py) wants the stack's `external_id`.

The HTTP functions run as Lambda runs them, in worker processes (`local.http_workers`: up to
`http_workers` at once per function, one invocation each), so requests are answered concurrently
and none can see another's; the fault layer armed here (`stack.cloud`) decides and counts their
calls too. `http()` waits for its answer as long as the stack makes progress.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import select
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from http.client import HTTPConnection
from types import TracebackType
from typing import Any

import boto3

from local import moto_events
from local.accounts import (
    FORWARD_RULE,
    HUB_ACCOUNT,
    HUB_REGION,
    SPOKE_EVENTS,
    ControlClients,
    DrsTargets,
    Intrinsics,
    Target,
    create_spoke_roles,
    put_role,
    spoke_accounts,
    spoke_events_template,
    spoke_targets,
    target_seed,
)
from local.aws_server import AwsFaults, MotoServer
from local.bus import LocalEventBus, current_function, put_event
from local.drs_fake import DrsFakeServer
from local.drs_sim import EC2_LATENCY, DrsSimulator, SimConfig
from local.faults import CloudFaults
from local.http_api import LocalHttpApi
from local.http_workers import HttpWorkers, refuse_while_bootstrapping
from local.iam import RolePolicies
from local.serverless import table_properties
from local.stack import role_policies, spoke_environment
from local.sts import SpokeSts
from reconciler import runtime
from reconciler.observability import logger

REGION = HUB_REGION
# deploy/spoke-events.yml's pattern, the one the doc names (until the template exists)
FORWARDED_EVENTS = {"source": ["aws.drs"], "detail-type": ["DRS Source Server Launch Result"]}
AMI = "ami-12c6146b"
TERMINAL_EXECUTION = frozenset({"COMPLETED", "PARTIAL", "FAILED", "CANCELLED"})
log = logging.getLogger("local-live")
DYNAMODB_WRITES = ("dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:TransactWriteItems")
DRS_READS = ("drs:DescribeJobs", "drs:DescribeRecoveryInstances", "drs:DescribeSourceServers")


def cloud_fault_key(kind: str, operation: str) -> str:
    """The name a fired `CloudFaults` fault is counted under, beside the simulator's and the
    embedded AWS's own: service, "start_" for StartRecovery ("terminate_" for a drill's clean-up's
    TerminateRecoveryInstances), kind ("dynamodb_lost_answer", "drs_start_lost_answer",
    "drs_terminate_lost_answer", "drs_start_quota_exceeded", "dynamodb_throttled", ...; a refused
    call is "access_denied"). The reliability battery counts its faults the same way."""
    if kind == "access_denied":
        return "access_denied"
    service, _, name = operation.partition(":")
    start = {"StartRecovery": "start_", "TerminateRecoveryInstances": "terminate_"}.get(name, "")
    return f"{service}_{start}{'throttled' if kind == 'throttle' else kind}"


class LiveStack:
    """Context manager: start everything, set the environment; undo both on exit.

    The HTTP functions' workers are spawned processes, which import the main module again: a
    script must start the stack under `if __name__ == "__main__":` (its entry points here do)."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        speed: float = 1.0,
        api_port: int = 0,
        latency: bool = True,
        table_name: str = "drs-wave-reconciler-local",
        log_level: str = "ERROR",
        instance_types: dict[str, str] | None = None,
        concurrency: int = 4,
        iam: bool = True,
        http_workers: int = 4,
        http_prewarm: int = 1,
        spokes: Iterable[tuple[str, str]] | None = None,
        shared_ids: bool = False,
    ) -> None:
        self.concurrency = concurrency  # concurrent invocations of the bus (Lambda concurrency)
        self.http_workers = http_workers  # worker processes per HTTP function, at most (its concurrency)
        self.http_prewarm = http_prewarm  # of which started with the stack (in the background)
        self.config = config or SimConfig()
        if not latency:
            self.config = self.config.without_latency()
        self.speed = speed
        self.api_port = api_port
        self.table_name = table_name
        self.log_level = log_level
        self.instance_types = instance_types or {}
        self.faults = AwsFaults(
            latency=dict(EC2_LATENCY) if latency else {},
            throttle={"ec2:DescribeInstances": self.config.throttle_rate},
            seed=self.config.seed,
        )
        self._policies: RolePolicies | None = None
        self.hub: Target = (HUB_ACCOUNT, HUB_REGION)
        self.spokes = spoke_targets(spokes)
        self.shared_ids = shared_ids
        self.external_id = secrets.token_hex(16)
        self.sts = SpokeSts(spoke_accounts(self.spokes), self.external_id)
        self.cloud = CloudFaults(
            seed=self.config.seed,
            iam=self._denied,
            current_function=current_function,
            account=HUB_ACCOUNT,
            region=HUB_REGION,
            sts=self.sts,
        )
        self.cloud.enforce_iam = iam
        self.sims: dict[Target, DrsSimulator] = {}
        self._dropping: set[Target] = set()
        self._drop_lock = threading.Lock()
        self._saved: dict[str, str | None] = {}
        self._saved_session: boto3.session.Session | None = None

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> LiveStack:
        refuse_while_bootstrapping()  # a script's unguarded stack, re-run by a worker's spawn
        moto_events.install()  # events keep their account; forwarding keeps account and Region
        self.moto = MotoServer(self.faults)
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self.ec2 = session.client("ec2", endpoint_url=self.moto.endpoint_url)
        self.dynamodb = session.client("dynamodb", endpoint_url=self.moto.endpoint_url)
        self.workers = HttpWorkers(
            self.cloud, concurrency=self.http_workers, prewarm=self.http_prewarm, log_level=self.log_level
        )
        self.bus = LocalEventBus(
            session.client("events", endpoint_url=self.moto.endpoint_url),
            session.client("sqs", endpoint_url=self.moto.endpoint_url),
            speed=self.speed,
            concurrency=self.concurrency,
            table_name=self.table_name,
            http=self.workers,
        )
        self.control = ControlClients(endpoint_url=self.moto.endpoint_url)
        for target in (self.hub, *self.spokes):
            config = replace(
                self.config, seed=target_seed(self.config.seed, target, shared_ids=self.shared_ids)
            )
            self.sims[target] = DrsSimulator(
                config,
                launch_ec2=partial(self._launch_instance, target),
                publish=partial(self._publish, target),
                hide_ec2=self.faults.hide,
                instance_type=self._instance_type,
                account=target[0],
                region=target[1],
            )
        for target, sim in self.sims.items():
            sim.terminate_ec2 = partial(self._terminate_instance, target)
        self.sim = self.sims[self.hub]
        self.drs_targets = DrsTargets(self.sim, hub_target=self.hub)
        for target in self.spokes:
            self.drs_targets.add(target, self.sims[target])
        self.drs_server = DrsFakeServer(self.sim, route=self.drs_targets.for_request)
        self._set_env(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL": self.moto.endpoint_url,
                "AWS_ENDPOINT_URL_DRS": self.drs_server.endpoint_url,
                "TABLE_NAME": self.table_name,
                "POWERTOOLS_SERVICE_NAME": "drs-reconciler",
                "POWERTOOLS_METRICS_NAMESPACE": "DrsReconciler",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                **spoke_environment(self.external_id),
            }
        )
        logger.setLevel(self.log_level)
        # Metrics are off locally; Powertools still warns that a handler published none.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        # The handlers' clients come from the default session: a fresh one with the fault layer
        # on its emitter, before any client is built (runtime.reset drops the cached ones).
        self._saved_session = boto3.DEFAULT_SESSION
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        self.cloud.install(boto3.DEFAULT_SESSION.events)
        runtime.reset()
        self.dynamodb.create_table(TableName=self.table_name, **table_properties())
        self._wire_spokes()
        self.bus.start()
        self.workers.start(os.environ)  # the environment as set above; workers boot meanwhile
        self.api = LocalHttpApi(self.bus.invoke, port=self.api_port)
        for sim in self.sims.values():
            sim.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for sim in self.sims.values():
            sim.stop()
        self.api.stop()
        self.workers.stop()
        self.bus.stop()
        self.drs_server.stop()
        self.moto.stop()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        boto3.DEFAULT_SESSION = self._saved_session
        runtime.reset()

    def _denied(self, function: str, service_operation: str, params: dict[str, Any]) -> list[str]:
        """The IAM actions `function`'s role (serverless.yml) lacks for this call ("spoke:observe"
        and "spoke:start": the spoke roles of deploy/spoke-roles.yml)."""
        if self._policies is None:
            self._policies = role_policies(self.external_id)
        return self._policies.denied(function, service_operation, params)

    # ---------------------------------------------------------------- accounts

    def _wire_spokes(self) -> None:
        """Every spoke account's roles (deploy/spoke-roles.yml) in moto's IAM; the hub bus's policy
        letting the spoke accounts put events on it (serverless.yml's HubBusPolicy with
        spokeAccountIds); in every spoke target, deploy/spoke-events.yml's forwarding rule from its
        default bus to the hub's."""
        if not self.spokes:
            return
        for account in spoke_accounts(self.spokes):
            create_spoke_roles(
                self.control.client("iam", account, HUB_REGION), account, external_id=self.external_id
            )
            self.bus.events.put_permission(
                EventBusName="default",
                Action="events:PutEvents",
                Principal=account,
                StatementId=f"spoke-{account}",
            )
        for account, region in self.spokes:
            self._forwarding_rule(account, region)

    def _forwarding_rule(self, account: str, region: str) -> None:
        hub_bus = f"arn:aws:events:{HUB_REGION}:{HUB_ACCOUNT}:event-bus/default"
        events = self.control.client("events", account, region)
        if not SPOKE_EVENTS.is_file():
            events.put_rule(Name=FORWARD_RULE, EventPattern=json.dumps(FORWARDED_EVENTS), State="ENABLED")
            events.put_targets(Rule=FORWARD_RULE, Targets=[{"Id": "hub-bus", "Arn": hub_bus}])
            return
        template = spoke_events_template()
        iam = self.control.client("iam", account, HUB_REGION)
        role = f"drs-reconciler-forward-{region}"  # CloudFormation names it per stack (Region)
        names: dict[str, str] = {}
        resolver = Intrinsics(
            template,
            account=account,
            region=region,
            parameters={"HubAccountId": HUB_ACCOUNT, "HubRegion": HUB_REGION},
        )
        for logical, resource in template["Resources"].items():
            if resource["Type"] == "AWS::IAM::Role":
                properties = resolver.resolve(resource["Properties"])
                names[logical] = put_role(iam, f"{role}-{logical}", properties)
        resolver.names.update(names)
        rule = resolver.resolve(template["Resources"][FORWARD_RULE]["Properties"])
        events.put_rule(
            Name=FORWARD_RULE,
            EventBusName=rule.get("EventBusName", "default"),
            EventPattern=json.dumps(rule["EventPattern"]),
            State=rule.get("State", "ENABLED"),
        )
        targets = rule["Targets"]
        if [target["Arn"] for target in targets] != [hub_bus]:
            raise ValueError(f"{SPOKE_EVENTS.name}'s rule targets {targets}, not the hub's bus {hub_bus}")
        events.put_targets(
            Rule=FORWARD_RULE, EventBusName=rule.get("EventBusName", "default"), Targets=targets
        )

    def drs_for(self, account: str | None = None, region: str | None = None) -> DrsSimulator:
        """The DRS simulator of a target (the hub's by default; a spoke account's first Region)."""
        if account is None or account == HUB_ACCOUNT:
            return self.sims[(HUB_ACCOUNT, region or HUB_REGION)]
        region = region or next((r for a, r in self.spokes if a == account), "")
        return self.sims[(account, region)]

    def drop_events_of(self, account: str, region: str | None = None, *, drop: bool = True) -> None:
        """Lose every Launch Result event of a target from now on (counted by its simulator as
        `event_dropped`), or deliver them again (`drop=False`)."""
        target = (account, self.drs_for(account, region).region)
        with self._drop_lock:
            if drop:
                self._dropping.add(target)
            else:
                self._dropping.discard(target)

    def _publish(self, target: Target, event: dict[str, Any]) -> None:
        """A simulator's event on its own account's default bus in its Region (the hub's: the
        hub bus itself; a spoke's reaches it through the spoke's forwarding rule)."""
        with self._drop_lock:
            dropping = target in self._dropping
        if dropping:
            self.sims[target].faults["event_dropped"] += 1
            return
        if target == self.hub:
            self.bus.put(event)
        else:
            put_event(self.control.client("events", *target), event)

    # ---------------------------------------------------------------- the cloud's faults

    def arm_start_faults(self) -> None:
        """The next StartRecovery calls, in order: refused over the concurrent-job quota once (the
        start is deferred), throttled three times in a row (the caller asks three times, then
        defers it again), then its answer lost after DRS created the job (a read timeout: the
        sweep adopts the job by its tags). Arm before `POST /executions` to meet wave 1's start."""
        self.cloud.arm("quota_exceeded", "drs:StartRecovery", times=1)
        self.cloud.arm("throttle", "drs:StartRecovery", times=3)
        self.cloud.arm("lost_answer", "drs:StartRecovery", times=1)

    def arm_rate_faults(self) -> None:
        """A share of the handlers' calls meet the cloud's failures, each kind also once for sure
        (its first call) so every run shows it: lost answers of DynamoDB writes that committed
        (3 %), transaction conflicts (2 %), DynamoDB throttling (3 %, absorbed by botocore's
        retries), DRS 5xx on the Describe* calls (5 %), and two DRS connect timeouts."""
        cloud = self.cloud
        for operation in ("dynamodb:UpdateItem", "dynamodb:TransactWriteItems"):
            cloud.arm("lost_answer", operation, times=1)
        cloud.arm("transaction_conflict", "dynamodb:UpdateItem", times=1)
        cloud.arm("throttle", "dynamodb:Query", times=1)
        cloud.arm("server_error", "drs:DescribeJobs", times=1)
        cloud.arm("connect_timeout", "drs:DescribeJobs", times=1)
        cloud.arm("connect_timeout", "drs:DescribeRecoveryInstances", times=1)
        for operation in DYNAMODB_WRITES:
            cloud.arm_rate("lost_answer", operation, 0.03)
        for operation in ("dynamodb:UpdateItem", "dynamodb:TransactWriteItems"):
            cloud.arm_rate("transaction_conflict", operation, 0.02)
        cloud.arm_rate("throttle", "dynamodb:*", 0.03)
        for operation in DRS_READS:
            cloud.arm_rate("server_error", operation, 0.05)

    def arm_fault_profile(self) -> None:
        """Everything `arm_start_faults` and `arm_rate_faults` arm (the demo arms the rates only
        after its POST, which a transaction conflict would otherwise answer 503)."""
        self.arm_start_faults()
        self.arm_rate_faults()

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    # ---------------------------------------------------------------- EC2 for the simulator

    def _instance_type(self, hostname: str) -> str:
        return self.instance_types.get(hostname.split("-", maxsplit=1)[0], "m5.large")

    def _launch_instance(self, target: Target, instance_type: str) -> tuple[str, str | None]:
        """An EC2 instance in the target's account and Region (of the moto server)."""
        ec2 = self.ec2 if target == self.hub else self.control.client("ec2", *target)
        reply = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType=instance_type)
        instance = reply["Instances"][0]
        return str(instance["InstanceId"]), instance.get("PrivateIpAddress")

    def _terminate_instance(self, target: Target, instance_id: str) -> None:
        """A recovery instance's EC2 instance terminated (a simulated TERMINATE job)."""
        ec2 = self.ec2 if target == self.hub else self.control.client("ec2", *target)
        ec2.terminate_instances(InstanceIds=[instance_id])

    # ---------------------------------------------------------------- the API, as a client sees it

    @property
    def api_url(self) -> str:
        return self.api.url

    def page_url(self, execution_id: str) -> str:
        return f"{self.api.url}/?execution={execution_id}"

    def http(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        patience: float = 120.0,
    ) -> tuple[int, dict[str, str], Any]:
        """One request to the local HTTP API; JSON answers decoded.

        No wall-clock deadline: on a loaded machine a request may queue for a worker, wait for a
        cold start, or meet slow AWS calls and the SDK's retries. It waits as long as the HTTP
        functions' workers make progress (a call to the fault layer, an answer, a worker
        starting), and gives up with TimeoutError only after `patience` seconds of none."""
        data = None if body is None else json.dumps(body).encode()
        host, port = self.api.url.removeprefix("http://").rsplit(":", 1)
        connection = HTTPConnection(host, int(port), timeout=patience)
        try:
            connection.request(
                method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})}
            )
            self._await_answer(connection, f"{method} {path}", patience)
            answer = connection.getresponse()
            status, reply_headers, raw = answer.status, dict(answer.headers.items()), answer.read()
        finally:
            connection.close()
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode(errors="replace")
        return status, reply_headers, decoded

    def _await_answer(self, connection: HTTPConnection, what: str, patience: float) -> None:
        """Until the answer's first bytes arrive, or nothing has progressed for `patience` s."""
        assert connection.sock is not None
        seen, quiet_since = self.workers.activity(), time.monotonic()
        while not select.select([connection.sock], [], [], 0.25)[0]:
            activity = self.workers.activity()
            if activity != seen:
                seen, quiet_since = activity, time.monotonic()
            elif time.monotonic() - quiet_since > patience:
                raise TimeoutError(f"{what}: no answer, and nothing progressed for {patience:.0f} s")

    def fault_counts(self) -> Counter[str]:
        """Every fault that fired so far, by kind: the simulator's (events dropped, duplicated,
        delayed; DRS throttling), the embedded AWS's (EC2 throttling, hidden instances) and the
        fault layer's on the handlers' clients (`cloud_fault_key`)."""
        cloud: Counter[str] = Counter()
        for (kind, operation), count in dict(self.cloud.fired_by_operation).items():
            cloud[cloud_fault_key(kind, operation)] += count
        simulated: Counter[str] = Counter()
        for sim in self.sims.values():
            simulated += Counter(dict(sim.faults))
        return simulated + Counter(dict(self.faults.injected)) + cloud
