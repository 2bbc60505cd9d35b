"""The sample scenario in events/ replayed through the handlers: invariants after every step, and
the same final document however its events are duplicated or reordered."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from local.scenario import load_scenario, run_scenario
from local.stack import LocalStack, restore, snapshot
from reconciler import runtime
from tests.invariants import EC2_FIELDS, regressions, torn_waves


def test_the_three_wave_scenario_keeps_every_invariant_at_every_step_and_completes():
    scenario = load_scenario("three-wave-drill")
    with LocalStack() as stack:
        previous: dict[str, Any] | None = None
        problems: list[str] = []
        steps = 0

        def check(index: int, step: dict[str, Any], run: Any) -> None:
            nonlocal previous, steps
            document = stack.get_execution(run.execution_id)
            problems.extend(
                f"step {index}: {p}" for p in torn_waves(document) + regressions(previous, document)
            )
            if step.get("hiddenFromEc2") or (step["do"] == "sweep" and "invisible" in step.get("note", "")):
                # the wave with the invisible instance must not be green yet
                assert document["waves"][0]["status"] == "LAUNCHING"
            previous = document
            steps += 1

        run = run_scenario(stack, scenario, on_step=check)
        final = stack.get_execution(run.execution_id)
    assert steps == len(scenario["steps"])
    assert problems == []
    assert final["status"] == "COMPLETED"
    assert [w["status"] for w in final["waves"]] == ["COMPLETED"] * 3
    assert all(all(s[f] for f in EC2_FIELDS) for w in final["waves"] for s in w["servers"])
    hosts = [s["hostname"] for w in final["waves"] for s in w["servers"]]
    assert hosts == [h for w in scenario["plan"]["waves"] for h in w["hosts"]]


@pytest.fixture
def frozen_clock():
    moment = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    original = runtime.CLOCK
    runtime.CLOCK = lambda: moment
    runtime.reset()
    yield moment
    runtime.CLOCK = original
    runtime.reset()


def test_duplicated_and_reordered_delivery_gives_the_identical_final_document(frozen_clock: datetime):
    # Given the scenario's DRS/EC2 history played out with its events held back
    scenario = load_scenario("three-wave-drill")
    with LocalStack() as stack:
        run = run_scenario(stack, scenario, defer_events=True)
        start = snapshot(stack)
        events = run.deferred
        rng = random.Random(7)
        shuffled_twice = events * 2
        rng.shuffle(shuffled_twice)
        deliveries = {
            "as emitted": events,
            "reversed, each twice": [e for e in reversed(events) for _ in range(2)],
            "shuffled, each twice": shuffled_twice,
            "only the last event": events[-1:],
        }
        documents = {}
        for name, sequence in deliveries.items():
            # When the events are delivered in that order onto the same starting table
            restore(stack, start)
            for event in sequence:
                stack.invoke("reconcile", event)
            if name == "only the last event":
                stack.sweep()  # lost events: the sweep converges the other waves
            documents[name] = stack.get_execution(run.execution_id)
    # Then every delivery order ends in the same document, fully COMPLETED
    reference = documents["as emitted"]
    assert reference["status"] == "COMPLETED"
    for name, document in documents.items():
        assert document == reference, name
