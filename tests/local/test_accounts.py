"""The embedded stacks' accounts (docs/multi-account.md, "Local stack"; local/accounts.py,
local/sts.py, local/moto_events.py): DRS per account and Region chosen from each request's
credentials, an STS that refuses what AWS's refuses (unknown role, wrong or missing ExternalId,
an untrusted function, a revoked role and its sessions), IAM checked against the spoke role for
calls signed with its keys, and moto forwarding a spoke's events to the hub's bus keeping their
account, Region and resources. The live stack's side: test_accounts_live.py.

Spoke clients are built here as production builds them (reconciler/spokes.py): AssumeRole with a
client of the default session, then a botocore session sharing the default session's event hooks,
so the fault layer sees both.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local import moto_events
from local.accounts import (
    DEFAULT_SPOKES,
    HUB_ACCOUNT,
    ROLE_NAMES,
    ControlClients,
    DrsTargets,
    forwarding_pattern,
)
from local.drs_fake import DrsFake, DrsFakeServer
from local.lambda_events import launch_result
from local.stack import LocalStack, role_policies

SPOKE, FAR = DEFAULT_SPOKES  # 222222222222 in us-east-1, 333333333333 in eu-west-1


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with LocalStack() as local:
        yield local


def assume(stack: LocalStack, account: str, level: str, *, external_id: str | None = None) -> dict[str, Any]:
    """AssumeRole as production does it: the default session's STS client."""
    params: dict[str, Any] = {
        "RoleArn": stack.sts.role_arn(account, level),
        "RoleSessionName": f"drs-reconciler-{level}",
        "DurationSeconds": 3600,
        "ExternalId": stack.external_id if external_id is None else external_id,
    }
    if external_id == "":
        del params["ExternalId"]
    credentials: dict[str, Any] = boto3.client("sts").assume_role(**params)["Credentials"]
    return credentials


def spoke_client(service: str, credentials: dict[str, Any], region: str) -> Any:
    """A client signed with assumed-role keys, on a session sharing the default one's hooks."""
    assert boto3.DEFAULT_SESSION is not None
    session = botocore.session.Session(
        event_hooks=boto3.DEFAULT_SESSION._session.get_component("event_emitter"),
        include_builtin_handlers=False,
    )
    session.set_credentials(
        credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
    )
    return session.create_client(service, region_name=region)


def server_ids(drs: Any) -> set[str]:
    return {server["sourceServerID"] for server in drs.describe_source_servers()["items"]}


def refusal(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call()
    error: dict[str, Any] = caught.value.response["Error"]
    return {**error, "status": caught.value.response["ResponseMetadata"]["HTTPStatusCode"]}


# ------------------------------------------------------------------------------ accounts


def test_the_stack_runs_the_hub_and_two_spokes_with_the_environment_production_reads(
    stack: LocalStack,
) -> None:
    assert stack.spokes == DEFAULT_SPOKES == (("222222222222", "us-east-1"), ("333333333333", "eu-west-1"))
    assert set(stack.drs_targets.fakes) == {(HUB_ACCOUNT, "us-east-1"), SPOKE, FAR}
    assert stack.drs_for() is stack.fake
    assert (stack.drs_for(*SPOKE).account, stack.drs_for(*FAR).region) == ("222222222222", "eu-west-1")
    assert os.environ["HUB_ACCOUNT_ID"] == HUB_ACCOUNT
    assert os.environ["SPOKE_EXTERNAL_ID"] == stack.external_id and len(stack.external_id) >= 16
    assert os.environ["SPOKE_ROLE_PATH"] == "/drs-reconciler/"
    assert (os.environ["SPOKE_OBSERVE_ROLE"], os.environ["SPOKE_START_ROLE"]) == (
        "drs-reconciler-observe",
        "drs-reconciler-start",
    )
    # deploy/spoke-roles.yml's roles exist in each spoke account's IAM, path and names as there
    for account in ("222222222222", "333333333333"):
        iam = stack.control.client("iam", account, "us-east-1")
        for level, name in ROLE_NAMES.items():
            role = iam.get_role(RoleName=name)["Role"]
            assert (
                role["Arn"]
                == f"arn:aws:iam::{account}:role/drs-reconciler/{name}"
                == stack.sts.role_arn(account, level)
            )
            trust = role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringEquals"]
            assert trust["sts:ExternalId"] == stack.external_id
            assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [level]


def test_one_account_stack_and_its_own_spokes() -> None:
    with LocalStack(spokes=()) as alone:
        assert set(alone.drs_targets.fakes) == {(HUB_ACCOUNT, "us-east-1")}
        assert alone.sts.roles == {}
    many = [(f"{100000000000 + i}", "us-east-1" if i % 2 else "eu-west-1") for i in range(1, 21)]
    with LocalStack(spokes=many) as big:
        assert len(big.drs_targets.fakes) == 21
        assert len(big.sts.roles) == 40
    with pytest.raises(ValueError, match="not the hub"):
        LocalStack(spokes=[(HUB_ACCOUNT, "eu-west-1")])


def test_drs_state_is_per_account_and_region(stack: LocalStack) -> None:
    (sid,) = stack.add_servers(["web-01"], account=SPOKE[0])
    hub_sids = set(stack.add_servers(["app-01"]))
    far_sids = set(stack.add_servers(["db-01"], account=FAR[0], region=FAR[1]))
    assert len({sid, *hub_sids, *far_sids}) == 3  # seeded apart: ids differ across targets

    assert server_ids(boto3.client("drs")) == hub_sids  # the hub's own credentials
    near = spoke_client("drs", assume(stack, SPOKE[0], "observe"), SPOKE[1])
    far = spoke_client("drs", assume(stack, FAR[0], "observe"), FAR[1])
    assert server_ids(near) == {sid}
    assert server_ids(far) == far_sids
    # the same account's keys in another Region: a DRS never initialized there
    far_keys_near_region = spoke_client("drs", assume(stack, FAR[0], "observe"), "us-east-1")
    assert refusal(far_keys_near_region.describe_source_servers)["Code"] == "UninitializedAccountException"
    # the source-server ARN names its own account and Region
    assert stack.drs_for(*SPOKE).describe_source_servers()["items"][0]["arn"] == (
        f"arn:aws:drs:us-east-1:222222222222:source-server/{sid}"
    )
    assert stack.drs_targets.routed[SPOKE] == 1 and stack.drs_targets.routed[FAR] == 1


def test_shared_ids_repeat_job_and_server_ids_across_accounts() -> None:
    with LocalStack(shared_ids=True) as stack:
        one = stack.add_servers(["web-01"], account=SPOKE[0])
        two = stack.add_servers(["web-01"], account=FAR[0])
        assert one == two
        jobs = [
            spoke_client("drs", assume(stack, account, "start"), region).start_recovery(
                sourceServers=[{"sourceServerID": one[0]}], isDrill=True
            )["job"]
            for account, region in (SPOKE, FAR)
        ]
        assert jobs[0]["jobID"] == jobs[1]["jobID"]
        assert [job["arn"].split(":")[3:5] for job in jobs] == [
            ["us-east-1", "222222222222"],
            ["eu-west-1", "333333333333"],
        ]
        assert stack.fake.calls == []  # the hub's DRS saw none of it


def test_the_same_job_id_in_two_accounts_reaches_each_account_s_wave() -> None:
    with LocalStack(shared_ids=True) as stack:
        executions = {}
        for account, region in (SPOKE, FAR):
            (sid,) = stack.add_servers(["web-01"], account=account, region=region)
            wave = {"name": "w", "sourceServerIds": [sid], "accountId": account, "region": region}
            status, _, document = stack.http(
                "POST", "/executions", body={"name": account, "isDrill": True, "waves": [wave]}
            )
            assert status == 202, document
            executions[account] = document
        (near_job, far_job) = (executions[a]["waves"][0]["jobId"] for a in (SPOKE[0], FAR[0]))
        assert near_job == far_job  # DRS's job ids are unique per account and Region only
        sid = executions[FAR[0]]["waves"][0]["servers"][0]["sourceServerId"]
        stack.launch(far_job, sid, account=FAR[0])
        stack.drs_for(*FAR).set_job_status(far_job, "STARTED")
        stack.drs_for(*FAR).set_job_status(far_job, "COMPLETED")
        stack.deliver(far_job, sid, account=FAR[0], region=FAR[1])
        assert stack.get_execution(executions[FAR[0]]["executionId"])["status"] == "COMPLETED"
        near = stack.get_execution(executions[SPOKE[0]]["executionId"])
        assert near["status"] != "COMPLETED" and near["waves"][0]["servers"][0]["launchStatus"] == "PENDING"


def test_unsigned_and_unknown_targets_at_the_drs_server() -> None:
    hub, spoke = DrsFake(seed=1), DrsFake(seed=2, account="222222222222")
    targets = DrsTargets(hub)
    targets.add(("222222222222", "us-east-1"), spoke)
    assert targets.for_request(None) is hub
    with DrsFakeServer(hub, route=targets.for_request) as server:
        answer = urllib.request.urlopen(
            urllib.request.Request(f"{server.endpoint_url}/DescribeJobs", data=b"{}")
        )
        assert json.loads(answer.read()) == {"items": []}
    assert targets.routed == {(HUB_ACCOUNT, "us-east-1"): 2}


def test_controls_act_in_the_target_s_account_and_region(stack: LocalStack) -> None:
    (sid,) = stack.add_servers(["db-01"], account=FAR[0])
    start = spoke_client("drs", assume(stack, FAR[0], "start"), FAR[1])
    job = start.start_recovery(sourceServers=[{"sourceServerID": sid}], isDrill=True)["job"]["jobID"]
    instance = stack.launch(job, sid, account=FAR[0], hidden=True)
    # the instance is the far account's, in eu-west-1: not the hub's, not there in us-east-1
    far_ec2 = stack.control.client("ec2", *FAR)
    assert [r["Instances"][0]["InstanceId"] for r in far_ec2.describe_instances()["Reservations"]] == [
        instance
    ]
    assert stack.ec2.describe_instances()["Reservations"] == []
    assert stack.control.client("ec2", FAR[0], "us-east-1").describe_instances()["Reservations"] == []
    # hidden from the handlers' view of that account (a spoke client on the default session's hooks)
    observe = assume(stack, FAR[0], "observe")
    assert spoke_client("ec2", observe, FAR[1]).describe_instances()["Reservations"] == []
    stack.reveal(account=FAR[0])
    assert len(spoke_client("ec2", observe, FAR[1]).describe_instances()["Reservations"]) == 1
    assert stack.drs_for(*FAR).get_job(job)["participatingServers"][0]["launchStatus"] == "LAUNCHED"
    # deliver's envelope is the target's, as the forwarded event would be
    seen: list[dict[str, Any]] = []
    stack.call = lambda function, event: seen.append(event)  # type: ignore[method-assign]
    stack.deliver(job, sid, account=FAR[0], region=FAR[1])
    assert (seen[0]["account"], seen[0]["region"], seen[0]["resources"]) == (
        "333333333333",
        "eu-west-1",
        [f"arn:aws:drs:eu-west-1:333333333333:source-server/{sid}"],
    )


# ------------------------------------------------------------------------------ STS


def test_sts_refuses_an_unknown_role_and_a_wrong_or_missing_external_id(stack: LocalStack) -> None:
    sts = boto3.client("sts")
    cases = {
        "unknown account": {
            "RoleArn": "arn:aws:iam::444444444444:role/drs-reconciler/drs-reconciler-observe"
        },
        "unknown name": {"RoleArn": "arn:aws:iam::222222222222:role/drs-reconciler/admin"},
        "wrong path": {"RoleArn": "arn:aws:iam::222222222222:role/drs-reconciler-observe"},
        "wrong external id": {"ExternalId": "not-the-stack-s-external-id"},
        "no external id": {"ExternalId": None},
    }
    for case, change in cases.items():
        params = {
            "RoleArn": stack.sts.role_arn("222222222222", "observe"),
            "RoleSessionName": "drs-reconciler-observe",
            "ExternalId": stack.external_id,
            **change,
        }
        params = {key: value for key, value in params.items() if value is not None}
        error = refusal(lambda params=params: sts.assume_role(**params))
        assert (error["status"], error["Code"]) == (403, "AccessDenied"), case
        assert error["Message"] == (
            f"User: arn:aws:iam::{HUB_ACCOUNT}:user/local-stack is not authorized to perform: "
            f"sts:AssumeRole on resource: {params['RoleArn']}"
        ), case
        assert stack.external_id not in error["Message"]
    assert stack.sts.assumed == {}
    assert sum(stack.sts.refused.values()) == len(cases)
    assert stack.sts.refused[("444444444444", "observe")] == 1
    assert stack.faults.fired["access_denied"] == len(cases)
    # moto itself would have granted every one of them: the layer is what refuses
    assume(stack, "222222222222", "observe")
    assert stack.sts.assumed == {("222222222222", "observe"): 1}


def test_a_role_trusts_only_the_hub_functions_its_level_lists(stack: LocalStack) -> None:
    stack.calls_by_function.current = "reconcile"
    assert refusal(lambda: assume(stack, "222222222222", "start"))["Code"] == "AccessDenied"
    assume(stack, "222222222222", "observe")
    stack.calls_by_function.current = "read"
    assert refusal(lambda: assume(stack, "222222222222", "observe"))["Code"] == "AccessDenied"
    for function in ("advance", "sweep", "start"):
        stack.calls_by_function.current = function
        assume(stack, "333333333333", "start")
    assert stack.sts.assumed == {("222222222222", "observe"): 1, ("333333333333", "start"): 3}
    assert stack.sts.refused == {("222222222222", "start"): 1, ("222222222222", "observe"): 1}


def test_a_revoked_role_is_refused_and_so_are_its_sessions(stack: LocalStack) -> None:
    (sid,) = stack.add_servers(["web-01"], account="222222222222")
    keys = assume(stack, "222222222222", "observe")
    drs, ec2 = spoke_client("drs", keys, "us-east-1"), spoke_client("ec2", keys, "us-east-1")
    assert server_ids(drs) == {sid}
    other = spoke_client("drs", assume(stack, "333333333333", "observe"), "eu-west-1")

    stack.sts.revoke("222222222222", "observe")
    error = refusal(drs.describe_source_servers)
    assert (error["status"], error["Code"]) == (403, "AccessDeniedException")
    assert error["Message"].startswith(
        "User: arn:aws:sts::222222222222:assumed-role/drs-reconciler-observe/drs-reconciler-observe "
        "is not authorized to perform: drs:DescribeSourceServers"
    )
    error = refusal(ec2.describe_instances)
    assert (error["status"], error["Code"]) == (403, "UnauthorizedOperation")
    assert refusal(lambda: assume(stack, "222222222222", "observe"))["Code"] == "AccessDenied"
    assert server_ids(other) == set()  # another account's sessions go on
    assume(stack, "222222222222", "start")  # and so does the other level of the same account
    assert stack.drs_for("222222222222").call_counts() == {"DescribeSourceServers": 1}  # none reached DRS

    stack.sts.restore("222222222222", "observe")
    assert server_ids(drs) == {sid}
    assert stack.sts.refused == {("222222222222", "observe"): 1}
    with pytest.raises(KeyError):
        stack.sts.revoke("444444444444", "observe")


# ------------------------------------------------------------------------------ IAM


def test_spoke_credentials_are_checked_against_the_spoke_role_not_the_function_s(stack: LocalStack) -> None:
    (sid,) = stack.add_servers(["web-01"], account="222222222222")
    stack.faults.enforce_iam = True
    stack.calls_by_function.current = "start"
    start = spoke_client("drs", assume(stack, "222222222222", "start"), "us-east-1")
    stack.calls_by_function.current = "reconcile"  # its role may not start recoveries anywhere
    observe = spoke_client("drs", assume(stack, "222222222222", "observe"), "us-east-1")
    assert refusal(lambda: assume(stack, "222222222222", "start"))["Code"] == "AccessDenied"
    since = len(stack.calls_by_function.calls)

    observe.describe_recovery_instances()  # its dependents (DescribeSourceServers, EC2) allowed too
    error = refusal(lambda: observe.start_recovery(sourceServers=[{"sourceServerID": sid}], isDrill=True))
    assert (error["status"], error["Code"]) == (403, "AccessDeniedException")
    assert error["Message"].startswith(
        "User: arn:aws:sts::222222222222:assumed-role/drs-reconciler-observe/drs-reconciler-observe "
        "is not authorized to perform: drs:"
    )
    # the start role (the start function's keys): StartRecovery and its dependents, which the
    # reconcile function's role lacks
    stack.calls_by_function.current = "start"
    job = start.start_recovery(sourceServers=[{"sourceServerID": sid}], isDrill=True, tags={"k": "v"})["job"]
    assert start.describe_jobs(maxResults=1)["items"][0]["jobID"] == job["jobID"]
    error = refusal(lambda: start.describe_job_log_items(jobID=job["jobID"]))  # not the start role's
    assert error["Code"] == "AccessDeniedException" and "drs:DescribeJobLogItems" in error["Message"]

    assert [(who, operation) for who, operation, _ in stack.calls_by_function.calls[since:]] == [
        ("spoke:observe", "drs:DescribeRecoveryInstances"),
        ("spoke:observe", "drs:StartRecovery"),
        ("spoke:start", "drs:StartRecovery"),
        ("spoke:start", "drs:DescribeJobs"),
        ("spoke:start", "drs:DescribeJobLogItems"),
    ]
    assert [(who, operation) for who, operation, _ in stack.calls_by_function.calls[since - 3 : since]] == [
        ("start", "sts:AssumeRole"),
        ("reconcile", "sts:AssumeRole"),
        ("reconcile", "sts:AssumeRole"),
    ]
    assert stack.sts.refused == {("222222222222", "start"): 1}
    assert stack.drs_for("222222222222").call_counts() == {
        "DescribeRecoveryInstances": 1,
        "StartRecovery": 1,
        "DescribeJobs": 1,
    }


def test_function_roles_may_assume_only_their_levels_on_the_role_path_with_the_external_id() -> None:
    policies = role_policies("an-external-id-0123")
    arn = "arn:aws:iam::{}:role/drs-reconciler/drs-reconciler-{}"
    allowed = {
        function: {
            level
            for level in ("observe", "start")
            if not policies.denied(
                function,
                "sts:AssumeRole",
                {"RoleArn": arn.format("222222222222", level), "ExternalId": "an-external-id-0123"},
            )
        }
        for function in ("reconcile", "advance", "sweep", "start", "read")
    }
    assert allowed == {
        "reconcile": {"observe"},
        "advance": {"observe", "start"},
        "sweep": {"observe", "start"},
        "start": {"observe", "start"},
        "read": set(),
    }
    for params in (
        {"RoleArn": arn.format("222222222222", "observe"), "ExternalId": "another-external-id"},
        {"RoleArn": arn.format("222222222222", "observe")},
        {
            "RoleArn": "arn:aws:iam::222222222222:role/drs-reconciler-observe",
            "ExternalId": "an-external-id-0123",
        },
        {
            "RoleArn": "arn:aws:iam::222222222222:role/drs-reconciler/admin",
            "ExternalId": "an-external-id-0123",
        },
    ):
        assert policies.denied("sweep", "sts:AssumeRole", params) == ["sts:AssumeRole"], params
    assert policies.denied("spoke:observe", "drs:DescribeRecoveryInstances", {}) == []
    assert policies.denied("spoke:observe", "ec2:DescribeInstances", {}) == []
    assert "drs:StartRecovery" in policies.denied("spoke:observe", "drs:StartRecovery", {})
    assert policies.denied("spoke:start", "drs:StartRecovery", {"tags": {"k": "v"}}) == []
    assert policies.denied("reconcile", "sts:GetCallerIdentity", {}) == []  # no permission needed


def test_keys_another_function_assumed_serve_only_a_function_that_could_have_assumed_them(
    stack: LocalStack,
) -> None:
    # Every function runs in this one process (Lambda gives each its own containers): keys cached
    # by one function and used by another are good only if that one could have assumed them
    stack.add_servers(["web-01"], account="222222222222")
    stack.faults.enforce_iam = True
    stack.calls_by_function.current = "start"
    observe = spoke_client("drs", assume(stack, "222222222222", "observe"), "us-east-1")
    start = spoke_client("drs", assume(stack, "222222222222", "start"), "us-east-1")
    stack.calls_by_function.current = "reconcile"
    observe.describe_jobs()  # reconcile may assume the observe role itself
    error = refusal(start.describe_jobs)  # but never the start role
    assert (error["status"], error["Code"]) == (403, "AccessDeniedException")
    assert error["Message"].startswith(
        f"User: arn:aws:sts::{HUB_ACCOUNT}:assumed-role/reconcile/reconcile is not authorized to perform: "
        "sts:AssumeRole on resource: arn:aws:iam::222222222222:role/drs-reconciler/drs-reconciler-start"
    )
    stack.calls_by_function.current = "read"
    assert refusal(observe.describe_jobs)["Code"] == "AccessDeniedException"
    stack.calls_by_function.current = "sweep"
    start.describe_jobs()
    assert stack.drs_for("222222222222").call_counts() == {"DescribeJobs": 2}


# ------------------------------------------------------------------------------ events


def test_moto_forwards_a_spoke_s_event_keeping_account_region_and_resources() -> None:
    moto_events.install()
    with mock_aws():
        control = ControlClients()
        hub_events, hub_sqs = (
            control.client("events", HUB_ACCOUNT, "us-east-1"),
            control.client("sqs", HUB_ACCOUNT, "us-east-1"),
        )
        queue = hub_sqs.create_queue(QueueName="drs")["QueueUrl"]
        queue_arn = hub_sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        hub_events.put_rule(Name="drs", EventPattern=json.dumps({"source": ["aws.drs"]}))
        hub_events.put_targets(Rule="drs", Targets=[{"Id": "q", "Arn": queue_arn}])
        spoke_events = control.client("events", "333333333333", "eu-west-1")
        spoke_events.put_rule(Name="forward", EventPattern=json.dumps(forwarding_pattern()))
        hub_bus = f"arn:aws:events:us-east-1:{HUB_ACCOUNT}:event-bus/default"
        spoke_events.put_targets(Rule="forward", Targets=[{"Id": "hub", "Arn": hub_bus}])
        event = launch_result("drsjob-abc", "s-0123456789abcdef0", account="333333333333", region="eu-west-1")

        def put() -> None:
            spoke_events.put_events(
                Entries=[
                    {
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps(event["detail"]),
                        "Resources": event["resources"],
                    }
                ]
            )

        put()  # the hub bus's policy does not let 333333333333 in yet: refused
        assert hub_sqs.receive_message(QueueUrl=queue).get("Messages") is None
        hub_events.put_permission(Action="events:PutEvents", Principal="333333333333", StatementId="spoke")
        put()
        (message,) = hub_sqs.receive_message(QueueUrl=queue)["Messages"]
        delivered = json.loads(message["Body"])
        assert (delivered["account"], delivered["region"], delivered["resources"]) == (
            "333333333333",
            "eu-west-1",
            ["arn:aws:drs:eu-west-1:333333333333:source-server/s-0123456789abcdef0"],
        )
        assert delivered["detail"] == event["detail"]
        assert delivered["source"] == "aws.drs" and delivered["detail-type"] == event["detail-type"]
        assert delivered["time"].endswith("Z")
    assert moto_events.refused[("333333333333", HUB_ACCOUNT)] >= 1
