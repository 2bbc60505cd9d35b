"""Each spoke role (deploy/spoke-roles.yml) allows exactly what the calls made with its keys need.

As tests/deploy/test_policies.py does for the hub's function roles, the expected actions are not
written down here: a recovery across the three accounts of the embedded stack (a plan with waves
in the hub and in both spokes, one in another Region, through POST; Launch Result events of the
spokes; lost events, a late EC2 instance and a lost StartRecovery answer in a spoke, caught up by
sweeps; starts in spokes by POST, by the stream's follow-up and by the sweep) runs the unmodified
handlers with IAM enforced, and every boto3 call made with a spoke role's keys is recorded under
that role ("spoke:observe", "spoke:start"; local/stack.py's CallsByFunction). Those calls, mapped
to IAM actions with their dependent actions (local/iam.py, the Service Authorization Reference),
must be allowed by the role's inline policies, and the role may allow nothing else: a new call
through a spoke role without a policy change fails here, and so does a permission no call needs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from local.accounts import HUB_ACCOUNT, SPOKE_ROLES
from local.drs_fake import DrsApiError, DrsFake
from local.iam import RolePolicies, call_actions, dependent_actions
from local.stack import LocalStack
from reconciler import runtime

NEAR = ("222222222222", "us-east-1")
FAR = ("333333333333", "eu-west-1")
HUB = (HUB_ACCOUNT, "us-east-1")
PRINCIPALS = {"observe": "spoke:observe", "start": "spoke:start"}
ROLES = {"observe": "ObserveRole", "start": "StartRole"}


class Clock:
    """One clock for the functions and the DRS fakes, moved by the scenario (claims go stale)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def complete(fake: DrsFake, job_id: str) -> None:
    fake.set_job_status(job_id, "STARTED")
    fake.set_job_status(job_id, "COMPLETED")


def lose_the_next_start_answer(fake: DrsFake) -> None:
    """The fake's next StartRecovery creates its job, and its answer is lost (500)."""
    original = fake.start_recovery

    def lost(params: Any = None, /, **kwargs: Any) -> Any:
        fake.start_recovery = original  # type: ignore[method-assign]
        original(params, **kwargs)
        raise DrsApiError("InternalServerException", 500, "the answer was lost")

    fake.start_recovery = lost  # type: ignore[method-assign]


def wave(stack: LocalStack, execution_id: str, number: int) -> dict[str, Any]:
    found: dict[str, Any] = stack.get_execution(execution_id)["waves"][number - 1]
    return found


def run_across_accounts(stack: LocalStack, clock: Clock) -> None:
    """One of everything the functions do in spokes, through their handlers."""
    plan = [
        ("near", NEAR, ["n-01", "n-02"]),
        ("far", FAR, ["f-01"]),
        ("hub", HUB, ["h-01"]),
        ("again", NEAR, ["n-03"]),
    ]
    body = {
        "name": "across",
        "isDrill": True,
        "waves": [
            {
                "name": name,
                "sourceServerIds": stack.add_servers(hosts, account=target[0], region=target[1]),
                "accountId": target[0],
                "region": target[1],
            }
            for name, target, hosts in plan
        ],
    }
    # POST checks every target through its roles, then starts wave 1 in NEAR (its start role)
    status, _, document = stack.http("POST", "/executions", body=body)
    assert status == 202, document
    execution_id = document["executionId"]
    near, far, hub = stack.drs_for(*NEAR), stack.drs_for(*FAR), stack.drs_for(*HUB)
    # Wave 1 by NEAR's events (reconcile: the observe role); the stream's follow-up starts wave 2
    # in FAR, whose StartRecovery answer is lost (the job exists)
    first = wave(stack, execution_id, 1)
    assert first["jobId"] and (first["accountId"], first["region"]) == NEAR, first
    for server in first["servers"]:
        stack.launch(first["jobId"], server["sourceServerId"], account=NEAR[0], region=NEAR[1])
    complete(near, first["jobId"])
    lose_the_next_start_answer(far)
    for server in first["servers"]:
        stack.deliver(first["jobId"], server["sourceServerId"], account=NEAR[0], region=NEAR[1])
    assert wave(stack, execution_id, 1)["status"] == "COMPLETED"
    assert wave(stack, execution_id, 2)["jobId"] is None
    # After the start grace the sweep adopts FAR's job by its tags
    clock.offset += timedelta(minutes=6)
    stack.sweep()
    second = wave(stack, execution_id, 2)
    assert second["jobId"], second
    assert far.get_job(second["jobId"])["jobID"] == second["jobId"]
    # Wave 2's events are lost and its instance is late: sweeps end it, and start wave 3 (the hub)
    for server in second["servers"]:
        stack.launch(second["jobId"], server["sourceServerId"], account=FAR[0], region=FAR[1], hidden=True)
    complete(far, second["jobId"])
    stack.sweep()
    assert wave(stack, execution_id, 2)["status"] != "COMPLETED"
    stack.reveal(account=FAR[0], region=FAR[1])
    stack.sweep()
    assert wave(stack, execution_id, 2)["status"] == "COMPLETED"
    third = wave(stack, execution_id, 3)
    if not third["jobId"]:
        stack.sweep()
        third = wave(stack, execution_id, 3)
    assert third["jobId"] and (third["accountId"], third["region"]) == HUB, third
    # Wave 3 in the hub by its event; wave 4 starts in NEAR again, and fails there
    for server in third["servers"]:
        stack.launch(third["jobId"], server["sourceServerId"])
    complete(hub, third["jobId"])
    for server in third["servers"]:
        stack.deliver(third["jobId"], server["sourceServerId"])
    fourth = wave(stack, execution_id, 4)
    if not fourth["jobId"]:
        stack.sweep()
        fourth = wave(stack, execution_id, 4)
    assert fourth["jobId"] and (fourth["accountId"], fourth["region"]) == NEAR, fourth
    for server in fourth["servers"]:
        stack.fail(fourth["jobId"], server["sourceServerId"], account=NEAR[0])
    complete(near, fourth["jobId"])
    stack.deliver(fourth["jobId"], fourth["servers"][0]["sourceServerId"], succeeded=False, account=NEAR[0])
    assert stack.get_execution(execution_id)["endTime"]
    # The drill's clean-up terminates the instances in NEAR, FAR and the hub (the start roles); the
    # sweep follows them to terminated (the observe roles)
    assert stack.http("POST", f"/executions/{execution_id}/cleanup")[0] == 202
    stack.sweep()
    assert stack.get_execution(execution_id)["cleanupStatus"] == "TERMINATED"


@pytest.fixture(scope="module")
def calls() -> Iterator[dict[str, list[tuple[str, dict[str, Any]]]]]:
    """(operation, params) of every call made with a spoke role's keys, by access level."""
    clock = Clock()
    with pytest.MonkeyPatch.context() as patch, LocalStack(clock=clock) as stack:
        patch.setattr(runtime, "CLOCK", clock)
        runtime.reset()
        stack.faults.enforce_iam = True
        run_across_accounts(stack, clock)
        assert stack.faults.fired == {}, "a call was refused: see the handlers' logs"
        by_level: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for principal, operation, params in stack.calls_by_function.calls:
            if principal.startswith("spoke:"):
                by_level[principal.removeprefix("spoke:")].append((operation, params))
        # every spoke target was reached, through both of its roles where it started a job
        assert stack.drs_for(*NEAR).call_counts().get("StartRecovery") == 2
        assert stack.drs_for(*FAR).call_counts().get("StartRecovery") == 1
        assert {account for account, _ in stack.sts.assumed} == {NEAR[0], FAR[0]}
        assert {level for _, level in stack.sts.assumed} == {"observe", "start"}
    yield by_level


@pytest.fixture(scope="module")
def used(calls: dict[str, list[tuple[str, dict[str, Any]]]]) -> dict[str, set[str]]:
    """The IAM actions each spoke role's calls need themselves."""
    return {
        level: set().union(*(call_actions(op, params) for op, params in calls.get(level, [])))
        for level in ROLES
    }


@pytest.fixture(scope="module")
def needed(used: dict[str, set[str]]) -> dict[str, set[str]]:
    """`used` plus every dependent action of those."""
    return {level: actions.union(*(dependent_actions(a) for a in actions)) for level, actions in used.items()}


def allowed(level: str) -> set[str]:
    """The actions the role's inline policies name, read from the template as deployed."""
    template: dict[str, Any] = yaml.safe_load(SPOKE_ROLES.read_text())
    found: set[str] = set()
    for policy in template["Resources"][ROLES[level]]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow", statement
            actions = statement["Action"]
            found.update(actions if isinstance(actions, list) else [actions])
    return found


def test_the_lifecycle_made_calls_with_both_spoke_roles(used: dict[str, set[str]]) -> None:
    assert "drs:StartRecovery" in used["start"]
    assert {"drs:DescribeJobs", "drs:DescribeRecoveryInstances", "ec2:DescribeInstances"} <= used["observe"]


def test_every_call_made_with_spoke_credentials_is_allowed_by_its_role(used: dict[str, set[str]]) -> None:
    for level, actions in used.items():
        missing = actions - allowed(level)
        assert not missing, (
            f"calls with the {level} role's keys need {sorted(missing)}, which it does not allow"
        )


def test_every_dependent_action_of_a_spoke_call_is_allowed_by_its_role(used: dict[str, set[str]]) -> None:
    missing = [
        f"the {level} role's calls need {action}, whose dependent {dependent} it does not allow"
        for level, actions in used.items()
        for action in sorted(actions)
        for dependent in sorted(dependent_actions(action) - allowed(level))
    ]
    assert not missing, "\n".join(missing)


def test_no_spoke_role_allows_what_its_calls_do_not_need(needed: dict[str, set[str]]) -> None:
    for level in ROLES:
        extra = allowed(level) - needed[level]
        assert not extra, f"the {level} role allows {sorted(extra)} that no call made with its keys needs"


def test_local_iam_reads_the_spoke_roles_as_deployed() -> None:
    # the local stacks check spoke calls with local/iam.py's reading of the same template
    roles = RolePolicies.from_spoke_roles(SPOKE_ROLES)
    for level, principal in PRINCIPALS.items():
        assert roles.actions(principal) == allowed(level), level
