"""Replay a scenario from `events/scenarios/` through the real handlers on the local stack.

A scenario is a plan plus an ordered list of steps that play DRS and EC2 (a job starts or
completes, a server launches or fails, EC2 hides an instance) and the deliveries AWS would make
(a Launch Result event, a sweep). The runner posts the plan through the start function, so ids
are real, and maps hostnames to the source servers and jobs it created. Events can be deferred
instead of delivered, so a test can deliver them later in any order, any number of times.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.lambda_events import EVENTS, launch_result
from local.stack import LocalStack
from reconciler.runtime import services
from reconciler.store import wave_key

SCENARIOS = EVENTS / "scenarios"


def load_scenario(name: str) -> dict[str, Any]:
    path = (
        Path(name)
        if Path(name).exists()
        else SCENARIOS / (name if name.endswith(".json") else f"{name}.json")
    )
    scenario: dict[str, Any] = json.loads(path.read_text())
    return scenario


@dataclass
class ScenarioRun:
    execution_id: str
    hosts: dict[str, str] = field(default_factory=dict)
    host_wave: dict[str, int] = field(default_factory=dict)
    jobs: dict[int, str] = field(default_factory=dict)
    deferred: list[dict[str, Any]] = field(default_factory=list)
    delivered: int = 0

    def job_of(self, host: str) -> str:
        return self.jobs[self.host_wave[host]]


StepHook = Callable[[int, dict[str, Any], ScenarioRun], None]


def start_plan(stack: LocalStack, scenario: dict[str, Any]) -> ScenarioRun:
    """Register the plan's hosts with the fake DRS and POST the plan; wave 1 starts."""
    plan = scenario["plan"]
    hosts: dict[str, str] = {}
    host_wave: dict[str, int] = {}
    for number, wave in enumerate(plan["waves"], start=1):
        for host, sid in zip(wave["hosts"], stack.add_servers(wave["hosts"]), strict=True):
            hosts[host] = sid
            host_wave[host] = number
    body = {
        "name": plan["name"],
        "isDrill": plan["isDrill"],
        "waves": [
            {"name": w["name"], "sourceServerIds": [hosts[h] for h in w["hosts"]]} for w in plan["waves"]
        ],
    }
    status, _, document = stack.http("POST", "/executions", body=body)
    if status != 202:
        raise RuntimeError(f"POST /executions answered {status}: {document}")
    run = ScenarioRun(execution_id=document["executionId"], hosts=hosts, host_wave=host_wave)
    run.jobs[1] = document["waves"][0]["jobId"]
    return run


def start_wave(run: ScenarioRun, number: int) -> None:
    """Record a later wave's job. Waves start by themselves when the one before ends; this step
    only starts one still waiting (a scenario that delays delivery) and notes its job id."""
    runtime = services()
    wave = runtime.store.get_wave(wave_key(run.execution_id, number))
    if wave is None:
        raise RuntimeError(f"no wave {number}")
    if wave.job_id is None:
        wave = runtime.executions.start_wave(wave)
    assert wave.job_id is not None
    run.jobs[number] = wave.job_id


def run_steps(
    stack: LocalStack,
    scenario: dict[str, Any],
    run: ScenarioRun,
    *,
    defer_events: bool = False,
    on_step: StepHook | None = None,
) -> ScenarioRun:
    types = scenario.get("instanceTypes", {})
    is_drill = bool(scenario["plan"]["isDrill"])
    for index, step in enumerate(scenario["steps"]):
        action = step["do"]
        if action == "job":
            stack.fake.set_job_status(run.jobs[step["wave"]], step["status"])
        elif action == "launch":
            host = step["host"]
            kind = types.get(host.split("-")[0], "m5.large")
            stack.launch(
                run.job_of(host), run.hosts[host], instance_type=kind, hidden=step.get("hiddenFromEc2", False)
            )
        elif action == "fail":
            stack.fail(run.job_of(step["host"]), run.hosts[step["host"]])
        elif action == "reveal":
            stack.reveal()
        elif action == "event":
            host = step["host"]
            succeeded = step.get("state", "RECOVERY_LAUNCH_SUCCEEDED") == "RECOVERY_LAUNCH_SUCCEEDED"
            event = launch_result(run.job_of(host), run.hosts[host], succeeded=succeeded, is_drill=is_drill)
            if defer_events:
                run.deferred.append(event)
            else:
                stack.invoke("reconcile", event)
                run.delivered += 1
        elif action == "sweep":
            if not defer_events:
                stack.sweep()
        elif action == "startWave":
            start_wave(run, step["wave"])
        else:
            raise ValueError(f"step {index}: unknown action {action!r}")
        if on_step is not None:
            on_step(index, step, run)
    return run


def run_scenario(
    stack: LocalStack,
    scenario: dict[str, Any],
    *,
    defer_events: bool = False,
    on_step: StepHook | None = None,
) -> ScenarioRun:
    return run_steps(stack, scenario, start_plan(stack, scenario), defer_events=defer_events, on_step=on_step)
