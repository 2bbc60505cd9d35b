"""The sample scenario in events/ replayed through the handlers: invariants after every step, and
the same final document however its events are duplicated or reordered."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from moto.moto_api._internal import mock_random

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


MOMENT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def reproducible(monkeypatch: pytest.MonkeyPatch):
    """One frozen clock for us and the DRS fake, and the same execution id in every fresh stack."""
    monkeypatch.setattr(runtime, "CLOCK", lambda: MOMENT)
    monkeypatch.setattr(runtime, "NEW_ID", lambda: "00000000-0000-4000-8000-000000000001")
    runtime.reset()
    yield
    runtime.reset()


def replay(scenario: dict[str, Any], *, disorder: int | None) -> dict[str, Any]:
    """Play the scenario's DRS/EC2 history once; deliver its events as emitted (disorder=None)
    or late, shuffled and duplicated (seeded), interleaved with the history; end with a sweep."""
    with LocalStack(clock=lambda: MOMENT) as stack:
        launch = stack.launch

        def seeded_launch(job_id: str, source_server_id: str, **kwargs: Any) -> str:
            mock_random.seed(source_server_id)  # the same EC2 ids and IPs in every replay
            return launch(job_id, source_server_id, **kwargs)

        stack.launch = seeded_launch  # type: ignore[method-assign]
        rng = random.Random(disorder)

        def deliver_some(index: int, step: dict[str, Any], run: Any) -> None:
            pending = run.deferred
            rng.shuffle(pending)
            for _ in range(rng.randint(0, len(pending))):
                event = pending.pop()
                stack.invoke("reconcile", event)
                if rng.random() < 0.3:
                    pending.append(event)  # delivered again later
            if step["do"] == "sweep" and rng.random() < 0.5:
                stack.sweep()

        if disorder is None:
            run = run_scenario(stack, scenario)
        else:
            run = run_scenario(stack, scenario, defer_events=True, on_step=deliver_some)
            for event in run.deferred:
                stack.invoke("reconcile", event)
        stack.sweep()
        document = stack.get_execution(run.execution_id)
    for wave in document["waves"]:
        for server in wave["servers"]:
            server["launchTime"] = bool(server["launchTime"])  # moto's wall clock, not ours
    return document


def test_late_shuffled_and_duplicated_delivery_gives_the_identical_final_document(reproducible: None):
    # Given the scenario's history, with its events delivered as emitted
    scenario = load_scenario("three-wave-drill")
    reference = replay(scenario, disorder=None)
    assert reference["status"] == "COMPLETED"
    # When the same history is replayed with events late, out of order and repeated
    for seed in (1, 2, 3):
        # Then the final document is the same, field for field
        assert replay(scenario, disorder=seed) == reference, f"disorder seed {seed}"


def test_the_deferred_events_alone_converge_whatever_their_order(reproducible: None):
    # Given the whole history first, then only its events (no sweep), in several orders
    scenario = load_scenario("three-wave-drill")
    with LocalStack(clock=lambda: MOMENT) as stack:
        run = run_scenario(stack, scenario, defer_events=True)
        start = snapshot(stack)
        events = run.deferred
        orders = {
            "as emitted": events,
            "reversed, each twice": [e for e in reversed(events) for _ in range(2)],
            "shuffled, each twice": random.Random(7).sample(events * 2, len(events) * 2),
        }
        documents = {}
        for name, sequence in orders.items():
            restore(stack, start)
            for event in sequence:
                stack.invoke("reconcile", event)
            documents[name] = stack.get_execution(run.execution_id)
    assert documents["as emitted"]["status"] == "COMPLETED"
    assert all(document == documents["as emitted"] for document in documents.values())
