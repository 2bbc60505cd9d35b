"""The local stack denies what the calling function's role would not allow, as AWS does.

With `stack.faults.enforce_iam`, every call a handler makes is checked against that function's
role in serverless.yml plus the dependent actions AWS's Service Authorization Reference lists for
it (local/iam.py). A whole lifecycle must pass with no denial; and a role missing a dependent
action (the defect the reconcile and sweep roles had: DescribeRecoveryInstances needs
DescribeSourceServers) is answered AccessDenied locally, where moto would have said nothing.
"""

from __future__ import annotations

from local.iam import RolePolicies, Statement
from local.stack import LocalStack
from tests.conftest import complete_job, post_plan


def without(policies: RolePolicies, function: str, action: str) -> RolePolicies:
    """The same roles, but `function`'s no longer names `action`."""
    statements = {}
    for name in policies.functions:
        kept = []
        for statement in policies.statements(name):
            actions = tuple(a for a in statement.actions if not (name == function and a == action))
            if actions:
                kept.append(
                    Statement(actions=actions, resources=statement.resources, condition=statement.condition)
                )
        statements[name] = kept
    return RolePolicies(statements, policies.stage)


def run_two_waves(stack: LocalStack) -> str:
    document = post_plan(stack, [["web-1", "web-2"], ["db-1"]])
    execution_id = str(document["executionId"])
    for number in (1, 2):
        wave = stack.get_execution(execution_id)["waves"][number - 1]
        job = wave["jobId"]
        stack.fake.set_job_status(job, "STARTED")
        for server in wave["servers"]:
            stack.launch(job, server["sourceServerId"])
            stack.deliver(job, server["sourceServerId"])
        complete_job(stack, job)
        stack.sweep()
    return execution_id


def test_a_whole_lifecycle_makes_no_call_its_roles_would_deny() -> None:
    with LocalStack() as stack:
        stack.faults.enforce_iam = True
        execution_id = run_two_waves(stack)
        assert stack.get_execution(execution_id)["status"] == "COMPLETED"
        assert stack.faults.fired["access_denied"] == 0


def test_a_role_missing_a_dependent_action_is_denied_locally() -> None:
    with LocalStack() as stack:
        stack.faults.enforce_iam = True
        stack._policies = without(RolePolicies.from_serverless(), "reconcile", "drs:DescribeSourceServers")
        document = post_plan(stack, [["web-1"]])
        job = document["waves"][0]["jobId"]
        sid = document["waves"][0]["servers"][0]["sourceServerId"]
        stack.fake.set_job_status(job, "STARTED")
        stack.launch(job, sid)
        # When the reconcile function handles the Launch Result, its DescribeRecoveryInstances is
        # refused (its dependent drs:DescribeSourceServers is not allowed): a permanent failure,
        # logged and counted, nothing written
        outcome = stack.deliver(job, sid)
        assert outcome["outcome"] == "failed"
        assert "AccessDenied" in outcome["error"] and "drs:DescribeSourceServers" in outcome["error"]
        assert stack.faults.fired_by_operation[("access_denied", "drs:DescribeRecoveryInstances")] == 1
        assert (
            stack.get_execution(document["executionId"])["waves"][0]["servers"][0]["launchStatus"]
            == "PENDING"
        )
