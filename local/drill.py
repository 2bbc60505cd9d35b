"""The sample drill the demo runs: three waves, twelve servers, three accounts, posted through the real API.

Databases first, then the application tier, then the web tier — the order a DR runbook recovers
a three-tier service in — and each tier in an account of its own, as estates spread over accounts
(docs/multi-account.md): the databases in the hub's own account and Region (123456789012,
us-east-1), the application tier in the spoke 222222222222 (us-east-1), the web tier in the spoke
333333333333 in another Region (eu-west-1). Every wave of the plan names its `accountId` and
`region`. The hosts are registered as replicating source servers with the DRS simulator of their
wave's target (`LiveStack.drs_for`), then the plan goes in with `POST /executions`, exactly as an
operator's client would; the hub reaches the spokes through their assumed roles.

A plan's wave may leave its target out (`bench.read`'s plans do): it then recovers in the hub.
"""

from __future__ import annotations

from typing import Any

from local.accounts import DEFAULT_SPOKES, HUB_ACCOUNT, HUB_REGION
from local.live import LiveStack

# (account, Region) of each tier: the hub, then the stack's two default spokes
HUB = (HUB_ACCOUNT, HUB_REGION)
APP_TARGET, WEB_TARGET = DEFAULT_SPOKES
SAMPLE_DRILL: dict[str, Any] = {
    "name": "Quarterly DR drill",
    "isDrill": True,
    # The RTO targets (seconds from the start; the demo's clock runs a drill in about half a
    # minute): the whole service, and the databases first
    "rtoTargetSeconds": 90,
    "waves": [
        {"name": "Databases", "hosts": ["db-01", "db-02", "db-03"], "target": HUB, "rtoTargetSeconds": 60},
        {
            "name": "Application tier",
            "hosts": ["app-01", "app-02", "app-03", "app-04", "app-05"],
            "target": APP_TARGET,
        },
        {"name": "Web tier", "hosts": ["web-01", "web-02", "web-03", "web-04"], "target": WEB_TARGET},
    ],
}
INSTANCE_TYPES = {"db": "r6i.xlarge", "app": "m6i.large", "web": "c6i.large"}


def targets(plan: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """The (account, Region) of each wave of a plan (the hub's where a wave names none)."""
    found = []
    for wave in (plan or SAMPLE_DRILL)["waves"]:
        account, region = wave.get("target") or HUB
        found.append((str(account), str(region)))
    return found


def start_drill(stack: LiveStack, plan: dict[str, Any] | None = None) -> str:
    """Register the plan's hosts, each with its wave's target's DRS, and POST the plan; returns
    the execution id. The waves then advance by themselves (each wave's end starts the next)."""
    plan = plan or SAMPLE_DRILL
    waves = []
    for wave, (account, region) in zip(plan["waves"], targets(plan), strict=True):
        drs = stack.drs_for(account, region)
        ids = [drs.add_source_server(hostname=host) for host in wave["hosts"]]
        planned: dict[str, Any] = {"name": wave["name"], "sourceServerIds": ids}
        if "target" in wave:
            planned.update(accountId=account, region=region)
        if "rtoTargetSeconds" in wave:
            planned["rtoTargetSeconds"] = wave["rtoTargetSeconds"]
        waves.append(planned)
    body = {"name": plan["name"], "isDrill": plan["isDrill"], "waves": waves}
    if "rtoTargetSeconds" in plan:
        body["rtoTargetSeconds"] = plan["rtoTargetSeconds"]
    status, _, document = stack.http("POST", "/executions", body=body)
    if status != 202:
        # Who else asked DRS to start these servers (their tags name the execution and wave):
        # how two requests handled at once were found to cross (local.serverless)
        first = set(waves[0]["sourceServerIds"])
        starts = [
            request.get("tags")
            for sim in stack.sims.values()
            for name, request in list(sim.calls)
            if name == "StartRecovery" and first & {s["sourceServerID"] for s in request["sourceServers"]}
        ]
        raise RuntimeError(
            f"POST /executions answered {status}: {document}; StartRecovery calls for wave 1's "
            f"servers, by their tags: {starts}"
        )
    execution_id: str = document["executionId"]
    return execution_id
