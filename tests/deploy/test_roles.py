"""Least privilege survives packaging: serverless-iam-roles-per-function gives every function a
role of its own in the template, so no function runs with the permissions another one needs
(a read handler that could start a recovery, say)."""

from __future__ import annotations

from tests.deploy.conftest import Template


def test_every_function_has_a_role_of_its_own(packaged: Template) -> None:
    functions = packaged.of_type("AWS::Lambda::Function")
    assert len(functions) >= 4
    roles: dict[str, str] = {}
    for name, function in functions.items():
        (role, attribute) = function["Properties"]["Role"]["Fn::GetAtt"]
        assert attribute == "Arn", name
        assert packaged.resources[role]["Type"] == "AWS::IAM::Role", name
        roles[name] = role
    assert len(set(roles.values())) == len(functions), roles


def test_the_provider_role_osls_generates_runs_no_function(packaged: Template) -> None:
    # serverless-iam-roles-per-function copies it as each role's template; nothing assumes it
    for name, function in packaged.of_type("AWS::Lambda::Function").items():
        assert function["Properties"]["Role"]["Fn::GetAtt"][0] != "IamRoleLambdaExecution", name
