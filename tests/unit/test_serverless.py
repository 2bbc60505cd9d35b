"""serverless.yml says what the code needs: the functions, their triggers, least-privilege roles,
retry and dead-letter settings, and the table whose indexes the store queries."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.lifecycle import EVENT_SOURCE, EXECUTION_COMPLETED, WAVE_COMPLETED
from reconciler.store import INFLIGHT_INDEX, JOB_INDEX

ROOT = Path(__file__).resolve().parents[2]
CONFIG: dict[str, Any] = yaml.safe_load((ROOT / "serverless.yml").read_text())
FUNCTIONS = CONFIG["functions"]
XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# What reconciling a wave calls: the describes of DRS and EC2, and the versioned read/write.
RECONCILING = {
    "drs:DescribeJobs",
    "drs:DescribeRecoveryInstances",
    "ec2:DescribeInstances",
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
}
# What drs:StartRecovery needs besides itself (Service Authorization Reference, "Dependent actions").
START_RECOVERY_DEPENDENCIES = {
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
# Starting a wave (start, and reconcile/sweep advancing an execution) and publishing our events.
STARTING = {
    "drs:DescribeJobs",
    "drs:StartRecovery",
    "drs:TagResource",
    "events:PutEvents",
    *START_RECOVERY_DEPENDENCIES,
}


def actions(function: str) -> set[str]:
    found: set[str] = set()
    for statement in FUNCTIONS[function]["iamRoleStatements"]:
        assert statement["Effect"] == "Allow"
        found.update(statement["Action"])
    return found - XRAY


def test_four_functions_whose_handlers_exist():
    assert set(FUNCTIONS) == {"reconcile", "sweep", "read", "start"}
    for function in FUNCTIONS.values():
        module, name = function["handler"].rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module.replace("/", ".")), name))


def test_reconcile_is_triggered_by_drs_launch_results_with_retries_and_a_dead_letter_queue():
    reconcile = FUNCTIONS["reconcile"]
    rule = reconcile["events"][0]["eventBridge"]
    assert rule["pattern"] == {"source": ["aws.drs"], "detail-type": ["DRS Source Server Launch Result"]}
    assert rule["retryPolicy"]["maximumRetryAttempts"] == 185
    assert rule["retryPolicy"]["maximumEventAge"] == 86400
    assert "deadLetterQueueArn" in rule
    assert reconcile["maximumRetryAttempts"] == 2
    assert reconcile["maximumEventAge"] <= 21600
    assert "onFailure" in reconcile["destinations"]


def test_sweep_runs_every_minute_alone():
    sweep = FUNCTIONS["sweep"]
    assert sweep["events"][0]["schedule"]["rate"] == "rate(1 minute)"
    assert sweep["reservedConcurrency"] == 1


def test_http_routes():
    assert [e["httpApi"] for e in FUNCTIONS["read"]["events"]] == [
        {"method": "GET", "path": "/executions/{executionId}"}
    ]
    iam = {"type": "aws_iam"}
    assert [e["httpApi"] for e in FUNCTIONS["start"]["events"]] == [
        {"method": "POST", "path": "/executions"},
        {"method": "POST", "path": "/executions/{executionId}/resume", "authorizer": iam},
        {"method": "POST", "path": "/executions/{executionId}/cancel", "authorizer": iam},
    ]


@pytest.mark.parametrize(
    ("function", "allowed"),
    [
        ("read", {"dynamodb:GetItem", "dynamodb:Query"}),
        ("reconcile", {*RECONCILING, *STARTING, "sqs:SendMessage"}),
        ("sweep", {*RECONCILING, *STARTING}),
        (
            "start",
            {
                "drs:DescribeSourceServers",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:Query",
                *STARTING,
            },
        ),
    ],
)
def test_each_function_has_exactly_its_own_least_privilege_actions(function: str, allowed: set[str]):
    assert actions(function) == allowed
    for statement in FUNCTIONS[function]["iamRoleStatements"]:
        assert all("*" not in action for action in statement["Action"])


def test_pass_role_is_limited_to_ec2():
    (statement,) = [s for s in FUNCTIONS["start"]["iamRoleStatements"] if "iam:PassRole" in s["Action"]]
    assert statement["Action"] == ["iam:PassRole"]
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_the_read_role_cannot_write_or_call_drs_or_ec2():
    assert not {a for a in actions("read") if not a.startswith("dynamodb:")}
    assert not actions("read") & {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    }


def test_the_table_is_on_demand_recoverable_retained_and_has_the_indexes_the_store_queries():
    table = CONFIG["resources"]["Resources"]["WavesTable"]
    assert table["DeletionPolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    indexes = {index["IndexName"]: index for index in properties["GlobalSecondaryIndexes"]}
    assert set(indexes) == {JOB_INDEX, INFLIGHT_INDEX}
    assert indexes[JOB_INDEX]["KeySchema"][0]["AttributeName"] == "jobId"
    assert indexes[INFLIGHT_INDEX]["KeySchema"][0]["AttributeName"] == "inflight"
    assert CONFIG["provider"]["environment"]["TABLE_NAME"] == {"Ref": "WavesTable"}


def test_our_events_are_declared_as_the_code_publishes_them():
    declared = CONFIG["custom"]["ourEvents"]
    assert declared["source"] == EVENT_SOURCE
    assert declared["detailTypes"] == [WAVE_COMPLETED, EXECUTION_COMPLETED]
    for function in ("reconcile", "sweep", "start"):
        assert "events:PutEvents" in actions(function)
    assert CONFIG["provider"]["environment"]["EVENT_BUS_NAME"] == "${param:eventBusName}"


def test_finished_executions_expire_by_ttl():
    table = CONFIG["resources"]["Resources"]["WavesTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert CONFIG["params"]["default"]["retentionDays"] == 90
