"""The spoke templates (deploy/spoke-roles.yml, deploy/spoke-events.yml) and the hub's side of them
in the packaged templates, against docs/multi-account.md: the role path and names, which hub
function may assume which access level, the ExternalId every AssumeRole needs (and that no stage
ships a usable one), what each spoke role allows (the observe role only describes; the start role
is the hub's own start statements, no more), and the forwarding of DRS's Launch Result events from
a spoke Region's default bus to the hub's default bus, whose policy accepts them."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from local.iam import dependent_actions
from tests.deploy.conftest import ROOT, Template, stage_params

SPOKE_ROLES = ROOT / "deploy" / "spoke-roles.yml"
SPOKE_EVENTS = ROOT / "deploy" / "spoke-events.yml"
DESIGN = ROOT / "docs" / "multi-account.md"
FUNCTIONS = ("reconcile", "advance", "sweep", "read", "start")
OBSERVE = {
    "drs:DescribeJobs",
    "drs:DescribeRecoveryInstances",
    "drs:DescribeSourceServers",
    "ec2:DescribeInstances",
}
LAUNCH_RESULT = {"source": ["aws.drs"], "detail-type": ["DRS Source Server Launch Result"]}
HUB_BUS = {"Fn::Sub": "arn:${AWS::Partition}:events:${HubRegion}:${HubAccountId}:event-bus/${HubBusName}"}
HUB_ROOT = {"Fn::Sub": "arn:${AWS::Partition}:iam::${HubAccountId}:root"}
# What only the hub's own roles need: its logs, tracing, table, events, dead letters, spoke roles.
HUB_ONLY = ("logs:", "xray:", "dynamodb:", "events:", "sqs:", "sts:")
ENVIRONMENT = (
    "HUB_ACCOUNT_ID",
    "SPOKE_EXTERNAL_ID",
    "SPOKE_ROLE_PATH",
    "SPOKE_OBSERVE_ROLE",
    "SPOKE_START_ROLE",
    "SWEEP_ACCOUNT_CONCURRENCY",
)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@cache
def spoke(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(path.read_text())
    return found


def roles_template() -> dict[str, Any]:
    return spoke(SPOKE_ROLES)


def events_template() -> dict[str, Any]:
    return spoke(SPOKE_EVENTS)


def role(logical_id: str) -> dict[str, Any]:
    found = roles_template()["Resources"][logical_id]
    assert found["Type"] == "AWS::IAM::Role", logical_id
    properties: dict[str, Any] = found["Properties"]
    return properties


def policy_statements(properties: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of a role's inline policies (Allow only)."""
    found = [s for policy in properties.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    assert all(s["Effect"] == "Allow" for s in found), found
    return found


def actions(statements: list[dict[str, Any]]) -> set[str]:
    return {action for s in statements for action in _listed(s["Action"])}


@cache
def design() -> dict[str, Any]:
    """What docs/multi-account.md fixes: the role ARNs by access level, the environment's names,
    and its table of which function may assume which level."""
    text = DESIGN.read_text()
    arns = {
        level: (path, name)
        for path, name, level in re.findall(
            r"`arn:aws:iam::<account>:role(/[^`]*/)([\w+=,.@-]+)` \(access level\s+`(\w+)`\)", text
        )
    }
    settings = dict(re.findall(r"`(SPOKE_\w+)`\s+\(`([^`]+)`\)", text))
    table = {
        function: {"observe": observe == "yes", "start": start == "yes"}
        for function, observe, start in re.findall(
            r"^\s*\|\s*(\w+)\s*\|\s*(yes|no)\b[^|]*\|\s*(yes|no)\b", text, re.M
        )
    }
    return {"arns": arns, "settings": settings, "table": table}


def hub_statements(template: Template, function: str) -> list[dict[str, Any]]:
    logical = f"{function.capitalize()}LambdaFunction"
    role_id = template.resources[logical]["Properties"]["Role"]["Fn::GetAtt"][0]
    return policy_statements(template.properties(role_id))


def assume_role_statements(template: Template, function: str) -> list[dict[str, Any]]:
    return [s for s in hub_statements(template, function) if "sts:AssumeRole" in _listed(s["Action"])]


def spoke_role_arn(level: str) -> dict[str, str]:
    path, name = design()["arns"][level]
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::*:role{path}{name}"}


def condition_value(template: Template, name: str) -> bool:
    """A condition of the packaged template, evaluated with its parameters' defaults."""

    def evaluate(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return template.body["Parameters"][value]["Default"]
            if key == "Condition":
                return evaluate(template.body["Conditions"][value])
            if key == "Fn::Equals":
                return evaluate(value[0]) == evaluate(value[1])
            if key == "Fn::Not":
                return not evaluate(value[0])
            if key == "Fn::And":
                return all(evaluate(item) for item in value)
            if key == "Fn::Or":
                return any(evaluate(item) for item in value)
            if key == "Fn::Join":
                return value[0].join(_listed(evaluate(value[1])))
            raise AssertionError(f"not evaluated here: {key}")
        return node

    return bool(evaluate(template.body["Conditions"][name]))


# --- the spoke templates ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [SPOKE_ROLES, SPOKE_EVENTS], ids=lambda p: p.name)
def test_spoke_templates_are_plain_yaml_with_no_account_written_in(path: Path) -> None:
    text = path.read_text()
    body = spoke(path)
    assert body["AWSTemplateFormatVersion"] == "2010-09-09"
    assert body["Resources"] and body["Parameters"] and body["Outputs"]
    assert not re.search(r"(^|[\s\[{,])!\w", text, re.M), "short-form intrinsics (!Sub): long forms only"
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", text), "an account id is written in: parameters only"
    assert "HubAccountId" in body["Parameters"]
    assert re.fullmatch(body["Parameters"]["HubAccountId"]["AllowedPattern"], "123456789012")
    assert not re.fullmatch(body["Parameters"]["HubAccountId"]["AllowedPattern"], "12345678901")


def test_the_makefile_lints_every_spoke_template() -> None:
    makefile = (ROOT / "Makefile").read_text()
    (listed,) = re.findall(r"^SPOKE_TEMPLATES :?= (.*)$", makefile, re.M)
    assert set(listed.split()) == {str(p.relative_to(ROOT)) for p in (ROOT / "deploy").glob("*.yml")}
    assert re.search(r"^\t\$\(BIN\)/cfn-lint -- \$\(SPOKE_TEMPLATES\)$", makefile, re.M)


def test_the_design_is_read() -> None:
    found = design()
    assert set(found["arns"]) == {"observe", "start"}
    assert set(found["settings"]) == {"SPOKE_ROLE_PATH", "SPOKE_OBSERVE_ROLE", "SPOKE_START_ROLE"}
    assert set(found["table"]) == set(FUNCTIONS)


def test_spoke_roles_have_the_design_s_logical_ids_path_and_names() -> None:
    (path, observe), (start_path, start) = design()["arns"]["observe"], design()["arns"]["start"]
    settings = design()["settings"]
    assert path == start_path == settings["SPOKE_ROLE_PATH"]
    assert (observe, start) == (settings["SPOKE_OBSERVE_ROLE"], settings["SPOKE_START_ROLE"])
    body = roles_template()
    assert {n for n, r in body["Resources"].items() if r["Type"] == "AWS::IAM::Role"} == {
        "ObserveRole",
        "StartRole",
    }
    parameters = body["Parameters"]
    for logical_id, name_parameter, name in (
        ("ObserveRole", "ObserveRoleName", observe),
        ("StartRole", "StartRoleName", start),
    ):
        properties = role(logical_id)
        assert properties["Path"] == {"Ref": "RolePath"}
        assert properties["RoleName"] == {"Ref": name_parameter}
        assert parameters[name_parameter]["Default"] == name
        assert properties["MaxSessionDuration"] == 3600
    assert parameters["RolePath"]["Default"] == path
    outputs = body["Outputs"]
    assert outputs["ObserveRoleArn"]["Value"] == {"Fn::GetAtt": ["ObserveRole", "Arn"]}
    assert outputs["StartRoleArn"]["Value"] == {"Fn::GetAtt": ["StartRole", "Arn"]}


@pytest.mark.parametrize(
    ("logical_id", "principals"),
    [("ObserveRole", "HubObserverRoleArns"), ("StartRole", "HubStarterRoleArns")],
)
def test_a_spoke_role_trusts_only_the_listed_hub_roles_with_the_external_id(
    logical_id: str, principals: str
) -> None:
    (trust,) = role(logical_id)["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Effect"] == "Allow"
    assert trust["Principal"] == {"AWS": HUB_ROOT}
    assert _listed(trust["Action"]) == ["sts:AssumeRole"]
    condition = trust["Condition"]
    assert condition["StringEquals"] == {"sts:ExternalId": {"Ref": "ExternalId"}}
    ((operator, keys),) = [(op, keys) for op, keys in condition.items() if op != "StringEquals"]
    assert operator in ("ArnEquals", "ArnLike")
    assert keys == {"aws:PrincipalArn": {"Ref": principals}}
    parameters = roles_template()["Parameters"]
    assert parameters[principals]["Type"] == "CommaDelimitedList"
    assert "Default" not in parameters[principals]


def test_the_external_id_is_a_secret_parameter_with_no_default() -> None:
    external = roles_template()["Parameters"]["ExternalId"]
    assert external["NoEcho"] is True
    assert external["MinLength"] >= 16
    assert "Default" not in external


def test_the_observe_role_only_describes() -> None:
    statements = policy_statements(role("ObserveRole"))
    assert actions(statements) == OBSERVE
    assert all(a.split(":")[1].startswith("Describe") for a in actions(statements))
    # DescribeRecoveryInstances' dependents are in it: the role can do what reconciling calls
    assert dependent_actions("drs:DescribeRecoveryInstances") <= actions(statements)


def test_the_start_role_starts_and_cleans_up_recoveries_with_their_dependents_and_nothing_else() -> None:
    allowed = actions(policy_statements(role("StartRole")))
    needed = (
        {"drs:StartRecovery", "drs:DescribeJobs", "drs:TagResource", "drs:TerminateRecoveryInstances"}
        | dependent_actions("drs:StartRecovery")
        | dependent_actions("drs:TerminateRecoveryInstances")  # a drill's clean-up
    )
    assert allowed == needed
    # of the observe role's, only the harmless DescribeJobs (and ec2:DescribeInstances, which
    # StartRecovery depends on, and drs:DescribeSourceServers, which TerminateRecoveryInstances
    # depends on): never the recovery instances
    assert allowed & OBSERVE == {"drs:DescribeJobs", "ec2:DescribeInstances", "drs:DescribeSourceServers"}
    assert "ec2:DescribeInstances" in dependent_actions("drs:StartRecovery")
    assert "drs:DescribeSourceServers" in dependent_actions("drs:TerminateRecoveryInstances")
    assert not {a for a in allowed if a.startswith(HUB_ONLY)}


def test_the_start_role_tags_only_on_create_and_passes_only_recovery_instance_roles_to_ec2() -> None:
    statements = policy_statements(role("StartRole"))
    (tag,) = [s for s in statements if "drs:TagResource" in _listed(s["Action"])]
    assert _listed(tag["Action"]) == ["drs:TagResource"]
    assert tag["Condition"] == {"StringEquals": {"drs:CreateAction": "StartRecovery"}}
    (passing,) = [s for s in statements if "iam:PassRole" in _listed(s["Action"])]
    assert _listed(passing["Action"]) == ["iam:PassRole"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    # the listed roles, or by default DRS's two recovery-instance roles in this account (as the hub's)
    condition, default, listed = passing["Resource"]["Fn::If"]
    assert default == stage_params("default")["recoveryInstanceRoleArns"]
    assert listed == {"Ref": "RecoveryInstanceRoleArns"}
    body = roles_template()
    parameter = body["Parameters"]["RecoveryInstanceRoleArns"]
    assert (parameter["Type"], parameter["Default"]) == ("CommaDelimitedList", "")
    assert body["Conditions"][condition] == {
        "Fn::Equals": [{"Fn::Join": ["", {"Ref": "RecoveryInstanceRoleArns"}]}, ""]
    }


def _regionless(value: Any) -> Any:
    """A hub statement's EC2 and SSM ARNs in any Region (a spoke role serves the whole account)."""
    if isinstance(value, dict):
        return {key: _regionless(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_regionless(item) for item in value]
    return value.replace(":${AWS::Region}:", ":*:") if isinstance(value, str) else value


def test_the_start_role_is_the_hub_start_function_s_statements_without_what_only_the_hub_needs(
    packaged: Template,
) -> None:
    # statement for statement (conditions included), so the two cannot drift apart
    hub = [
        _regionless(s)
        for s in hub_statements(packaged, "start")
        if not any(a.startswith(HUB_ONLY) for a in _listed(s["Action"]))
        and _listed(s["Action"]) != ["drs:DescribeSourceServers"]  # POST's check: the observe role's
        and _listed(s["Action"]) != ["iam:PassRole"]  # compared above (the spoke's own roles)
    ]
    ours = [s for s in policy_statements(role("StartRole")) if _listed(s["Action"]) != ["iam:PassRole"]]
    assert ours == hub


@pytest.mark.parametrize("path", [SPOKE_ROLES, SPOKE_EVENTS], ids=lambda p: p.name)
def test_no_spoke_action_is_a_wildcard(path: Path) -> None:
    for logical_id, resource in spoke(path)["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        properties = resource["Properties"]
        documents = [properties["AssumeRolePolicyDocument"]] + [
            p["PolicyDocument"] for p in properties.get("Policies", [])
        ]
        for document in documents:
            for statement in document["Statement"]:
                assert "NotAction" not in statement and "NotResource" not in statement, logical_id
                assert all("*" not in a and "?" not in a for a in _listed(statement["Action"])), logical_id


def test_the_forwarding_rule_sends_exactly_launch_results_to_the_hub_bus(packaged: Template) -> None:
    body = events_template()
    rule = body["Resources"]["ForwardDrsEvents"]
    assert rule["Type"] == "AWS::Events::Rule"
    properties = rule["Properties"]
    assert properties.get("EventBusName", "default") == "default"
    assert properties.get("State", "ENABLED") == "ENABLED"
    assert properties["EventPattern"] == LAUNCH_RESULT
    # the same events the hub's reconcile function's rule takes
    (hub_rule,) = [
        r["Properties"]
        for r in packaged.of_type("AWS::Events::Rule").values()
        if any(
            t["Arn"] == {"Fn::GetAtt": ["ReconcileLambdaFunction", "Arn"]} for t in r["Properties"]["Targets"]
        )
    ]
    assert hub_rule["EventPattern"] == properties["EventPattern"]
    assert hub_rule.get("EventBusName", "default") == "default"
    (target,) = properties["Targets"]
    assert target["Arn"] == HUB_BUS
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwardRole", "Arn"]}
    assert body["Parameters"]["HubBusName"]["Default"] == "default"
    assert {"HubAccountId", "HubRegion"} <= set(body["Parameters"])


def test_the_forwarding_role_is_events_own_and_puts_only_on_the_hub_bus() -> None:
    resource = events_template()["Resources"]["ForwardRole"]
    assert resource["Type"] == "AWS::IAM::Role"
    properties = resource["Properties"]
    # IAM roles are global and this stack runs in several Regions: CloudFormation names it
    assert "RoleName" not in properties or "${AWS::Region}" in json.dumps(properties["RoleName"])
    (trust,) = properties["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert _listed(trust["Action"]) == ["sts:AssumeRole"]
    (statement,) = policy_statements(properties)
    assert _listed(statement["Action"]) == ["events:PutEvents"]
    assert _listed(statement["Resource"]) == [HUB_BUS]
    assert "Condition" not in statement or statement["Condition"]


# --- the hub's side, packaged ---------------------------------------------------------------------


def test_each_function_may_assume_exactly_the_levels_the_design_gives_it(packaged: Template) -> None:
    for function, levels in design()["table"].items():
        resources = [r for s in assume_role_statements(packaged, function) for r in _listed(s["Resource"])]
        expected = [spoke_role_arn(level) for level in ("observe", "start") if levels[level]]
        assert sorted(map(json.dumps, resources)) == sorted(map(json.dumps, expected)), function
    assert design()["table"]["reconcile"] == {"observe": True, "start": False}


def test_reconcile_may_assume_only_observe_roles_and_read_no_role_at_all(packaged: Template) -> None:
    resources = [r for s in assume_role_statements(packaged, "reconcile") for r in _listed(s["Resource"])]
    assert resources == [spoke_role_arn("observe")]
    assert "start" not in json.dumps(resources)
    assert not {
        a for s in hub_statements(packaged, "read") for a in _listed(s["Action"]) if a.startswith("sts:")
    }
    for function in FUNCTIONS:
        sts = {
            a
            for s in hub_statements(packaged, function)
            for a in _listed(s["Action"])
            if a.startswith("sts:")
        }
        assert sts <= {"sts:AssumeRole"}, function


def test_every_assume_role_needs_the_stage_s_external_id(packaged: Template) -> None:
    found = 0
    for function in FUNCTIONS:
        for statement in assume_role_statements(packaged, function):
            found += 1
            assert _listed(statement["Action"]) == ["sts:AssumeRole"], function
            assert statement["Condition"] == {
                "StringEquals": {"sts:ExternalId": packaged.params["spokeExternalId"]}
            }, function
            for resource in _listed(statement["Resource"]):
                assert resource["Fn::Sub"].startswith("arn:${AWS::Partition}:iam::*:role/"), function
    assert found == 7  # reconcile 1, advance 2, sweep 2, start 2


def test_no_stage_ships_a_usable_external_id(packaged: Template) -> None:
    # serverless.yml commits none: a stage with spokes passes `--param spokeExternalId=...` at
    # deploy. "" cannot be sent (STS wants 2 characters or more), so the statements allow nothing
    assert packaged.params["spokeExternalId"] == ""
    for function in FUNCTIONS:
        for statement in assume_role_statements(packaged, function):
            assert len(statement["Condition"]["StringEquals"]["sts:ExternalId"]) < 2
    for name, resource in packaged.of_type("AWS::Lambda::Function").items():
        assert resource["Properties"]["Environment"]["Variables"]["SPOKE_EXTERNAL_ID"] == "", name


def test_every_function_gets_the_spoke_settings(packaged: Template) -> None:
    settings = design()["settings"]
    functions = packaged.of_type("AWS::Lambda::Function")
    assert len(functions) == len(FUNCTIONS)
    for name, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert set(ENVIRONMENT) <= set(variables), name
        assert variables["HUB_ACCOUNT_ID"] == {"Ref": "AWS::AccountId"}, name
        assert variables["SPOKE_EXTERNAL_ID"] == packaged.params["spokeExternalId"], name
        for key in ("SPOKE_ROLE_PATH", "SPOKE_OBSERVE_ROLE", "SPOKE_START_ROLE"):
            assert variables[key] == settings[key], (name, key)
        assert variables["SWEEP_ACCOUNT_CONCURRENCY"] == str(packaged.params["sweepAccountConcurrency"]), name
    assert stage_params("default")["sweepAccountConcurrency"] == 2


def test_the_dev_hub_bus_accepts_no_spoke(template: Template) -> None:
    assert template.params["spokeOrganizationId"] == "" and template.params["spokeAccountIds"] == ""
    assert not condition_value(template, "HasSpokes")
    assert template.resources["HubBusPolicy"]["Condition"] == "HasSpokes"


def test_the_prod_hub_bus_accepts_launch_results_from_the_organisation(prod_template: Template) -> None:
    organisation = prod_template.params["spokeOrganizationId"]
    assert re.fullmatch(r"o-[a-z0-9]{10,32}", organisation)
    assert prod_template.body["Parameters"]["SpokeOrganizationId"]["Default"] == organisation
    policy = prod_template.resources["HubBusPolicy"]
    assert policy["Type"] == "AWS::Events::EventBusPolicy"
    assert condition_value(prod_template, policy["Condition"])
    assert condition_value(prod_template, "HasSpokeOrganization")
    assert not condition_value(prod_template, "HasSpokeOrganizationAndAccounts")
    properties = policy["Properties"]
    # the default bus: where the reconcile function's rule listens (not params.eventBusName's)
    assert properties["EventBusName"] == "default"
    selected, by_organisation, by_accounts = properties["Statement"]["Fn::If"]
    assert selected == "HasSpokeOrganization"
    bus = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"}
    only_launch_results = {
        "events:source": "aws.drs",
        "events:detail-type": "DRS Source Server Launch Result",
    }
    assert by_organisation == {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "events:PutEvents",
        "Resource": bus,
        "Condition": {
            "StringEquals": {"aws:PrincipalOrgID": {"Ref": "SpokeOrganizationId"}, **only_launch_results}
        },
    }
    assert by_accounts["Principal"] == {"AWS": {"Ref": "SpokeAccountIds"}}
    assert by_accounts["Condition"] == {"StringEquals": only_launch_results}
    both = prod_template.resources["HubBusAccountsPolicy"]
    assert both["Condition"] == "HasSpokeOrganizationAndAccounts"
    assert both["Properties"]["Statement"] == by_accounts
    assert both["Properties"]["StatementId"] != properties["StatementId"]
