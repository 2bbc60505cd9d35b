"""The sample drill the demo runs: three waves, twelve servers, posted through the real API.

Databases first, then the application tier, then the web tier — the order a DR runbook recovers
a three-tier service in. The hosts are registered with the DRS simulator as replicating source
servers, then the plan goes in with `POST /executions`, exactly as an operator's client would.
"""

from __future__ import annotations

from typing import Any

from local.live import LiveStack

SAMPLE_DRILL: dict[str, Any] = {
    "name": "Quarterly DR drill",
    "isDrill": True,
    "waves": [
        {"name": "Databases", "hosts": ["db-01", "db-02", "db-03"]},
        {"name": "Application tier", "hosts": ["app-01", "app-02", "app-03", "app-04", "app-05"]},
        {"name": "Web tier", "hosts": ["web-01", "web-02", "web-03", "web-04"]},
    ],
}
INSTANCE_TYPES = {"db": "r6i.xlarge", "app": "m6i.large", "web": "c6i.large"}


def start_drill(stack: LiveStack, plan: dict[str, Any] | None = None) -> str:
    """Register the plan's hosts and POST the plan; returns the execution id. The waves then
    advance by themselves (each wave's end starts the next)."""
    plan = plan or SAMPLE_DRILL
    waves = []
    for wave in plan["waves"]:
        ids = [stack.sim.add_source_server(hostname=host) for host in wave["hosts"]]
        waves.append({"name": wave["name"], "sourceServerIds": ids})
    body = {"name": plan["name"], "isDrill": plan["isDrill"], "waves": waves}
    status, _, document = stack.http("POST", "/executions", body=body)
    if status != 202:
        # Who else asked DRS to start these servers (their tags name the execution and wave):
        # how two requests handled at once were found to cross (local.serverless)
        first = set(waves[0]["sourceServerIds"])
        starts = [
            request.get("tags")
            for name, request in list(stack.sim.calls)
            if name == "StartRecovery" and first & {s["sourceServerID"] for s in request["sourceServers"]}
        ]
        raise RuntimeError(
            f"POST /executions answered {status}: {document}; StartRecovery calls for wave 1's "
            f"servers, by their tags: {starts}"
        )
    execution_id: str = document["executionId"]
    return execution_id
