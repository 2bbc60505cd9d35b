"""Each function's role in the packaged template allows exactly what its code calls, and no more.

The expected actions are not written down here: a recovery lifecycle that takes every path the
functions have (POST with DRS's start, events, lost events and sweeps, a pause and a resume, a
StartRecovery whose answer is lost and a job adopted, a cancel, reads) runs the unmodified
handlers on the embedded stack, and every boto3 call is recorded with the function that made it.
Those calls, mapped to IAM actions, must be allowed by that function's role in the template osls
packaged, and the role may allow nothing beyond them except what AWS itself needs of it (its logs,
tracing, an on-failure destination, a stream mapping, StartRecovery's dependent actions). So a new
boto3 call without a policy change fails here, and so does a permission no code uses any more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.lambda_events import stream_batch
from local.stack import LocalStack
from reconciler import runtime
from tests.conftest import complete_job, lose_the_answer, post_plan
from tests.deploy.conftest import Template

# What tracing (X-Ray) and CloudWatch Logs need in every role (osls and active tracing).
PLATFORM = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}
# drs:StartRecovery launches with the caller's permissions: its dependent actions, as the
# Service Authorization Reference lists them for StartRecovery.
START_RECOVERY_DEPENDENTS = {
    "drs:CreateRecoveryInstanceForDrs",
    "drs:ListTagsForResource",
    "iam:PassRole",
    *(
        f"ec2:{action}"
        for action in [
            "AttachVolume",
            "AuthorizeSecurityGroupEgress",
            "AuthorizeSecurityGroupIngress",
            "CreateLaunchTemplate",
            "CreateLaunchTemplateVersion",
            "CreateSnapshot",
            "CreateTags",
            "CreateVolume",
            "DeleteLaunchTemplateVersions",
            "DeleteSnapshot",
            "DeleteVolume",
            "DescribeAccountAttributes",
            "DescribeAvailabilityZones",
            "DescribeImages",
            "DescribeInstanceAttribute",
            "DescribeInstanceStatus",
            "DescribeInstanceTypes",
            "DescribeInstances",
            "DescribeLaunchTemplateVersions",
            "DescribeLaunchTemplates",
            "DescribeSecurityGroups",
            "DescribeSnapshots",
            "DescribeSubnets",
            "DescribeVolumes",
            "DetachVolume",
            "ModifyInstanceAttribute",
            "ModifyLaunchTemplate",
            "RevokeSecurityGroupEgress",
            "RunInstances",
            "StartInstances",
            "StopInstances",
            "TerminateInstances",
        ]
    ),
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
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
ITEM_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}


def iam_actions(operation: str, params: dict[str, Any]) -> set[str]:
    """The IAM actions one API call needs: the operation's own (the prefix is the service's), a
    transaction's per-item actions (there is no TransactWriteItems action), and TagResource for a
    StartRecovery that tags what it creates."""
    service, name = operation.split(":")
    if operation == "dynamodb:TransactWriteItems":
        return {f"dynamodb:{TRANSACT_ACTIONS[kind]}" for item in params["TransactItems"] for kind in item}
    if operation == "drs:StartRecovery" and params.get("tags"):
        return {operation, "drs:TagResource"}
    return {f"{service}:{name}"}


class Clock:
    """One clock for the functions and the DRS fake, moved by the scenario (claims go stale)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


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
    assert stack.http("POST", f"/executions/{second}/resume")[0] == 200
    assert stack.http("POST", f"/executions/{second}/cancel")[0] == 200
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
        by_function: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for function, operation, params in stack.calls_by_function.calls:
            by_function[function].append((operation, params))
    yield by_function


@pytest.fixture(scope="module")
def used(calls: dict[str, list[tuple[str, dict[str, Any]]]]) -> dict[str, set[str]]:
    return {
        function: set().union(*(iam_actions(op, params) for op, params in found))
        for function, found in calls.items()
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


def test_the_lifecycle_ran_every_function(used: dict[str, set[str]], template: Template) -> None:
    assert set(function_names(template)) <= set(used), "a function never ran: its role is untested"


def test_every_call_the_code_makes_is_allowed_to_the_function_that_makes_it(
    packaged: Template, used: dict[str, set[str]]
) -> None:
    for function in function_names(packaged):
        missing = used[function] - allowed(packaged, function)
        assert not missing, f"{function} calls {sorted(missing)} but its role does not allow it"


def test_no_role_allows_what_its_code_does_not_call(packaged: Template, used: dict[str, set[str]]) -> None:
    for function in function_names(packaged):
        extra = allowed(packaged, function) - used[function] - PLATFORM - NEEDED_BY_AWS.get(function, set())
        if function in STARTS_RECOVERY:
            extra -= START_RECOVERY_DEPENDENTS
        assert not extra, f"{function}'s role allows {sorted(extra)} that no call of its code needs"


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
    packaged: Template, used: dict[str, set[str]]
) -> None:
    actions = allowed(packaged, "reconcile") - PLATFORM - NEEDED_BY_AWS["reconcile"]
    outside_dynamodb = {a for a in actions if not a.startswith("dynamodb:")}
    assert outside_dynamodb == {a for a in used["reconcile"] if not a.startswith("dynamodb:")}
    assert all(a.split(":")[0] in ("drs", "ec2") and ":Describe" in a for a in outside_dynamodb)
    assert {a for a in actions if a.startswith("dynamodb:")} == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    }
    (send,) = [s for s in statements(packaged, "reconcile") if "sqs:SendMessage" in _listed(s["Action"])]
    assert send["Resource"] == [{"Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]}]


def test_only_the_starters_change_drs_and_they_only_start_and_tag_recoveries(packaged: Template) -> None:
    for function in function_names(packaged):
        drs_changes = {
            a
            for a in allowed(packaged, function)
            if a.startswith("drs:") and not a.split(":")[1].startswith(("Describe", "List", "Get"))
        }
        if function in STARTS_RECOVERY:
            assert drs_changes == {"drs:StartRecovery", "drs:TagResource", "drs:CreateRecoveryInstanceForDrs"}
        else:
            assert drs_changes == set(), function


def test_pass_role_only_hands_roles_to_ec2(packaged: Template) -> None:
    for function in STARTS_RECOVERY:
        (statement,) = [s for s in statements(packaged, function) if "iam:PassRole" in _listed(s["Action"])]
        assert _listed(statement["Action"]) == ["iam:PassRole"]
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_every_item_write_is_conditional(calls: dict[str, list[tuple[str, dict[str, Any]]]]) -> None:
    writes = 0
    for function, found in calls.items():
        for operation, params in found:
            if operation in ("dynamodb:UpdateItem", "dynamodb:PutItem"):
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
                assert not set(_listed(statement["Action"])) & {
                    "dynamodb:DeleteItem",
                    "dynamodb:BatchWriteItem",
                }
