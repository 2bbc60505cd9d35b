"""Shared fixtures: the embedded stack (moto + DRS fake + table from serverless.yml) and helpers."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import botocore.endpoint
import pytest

from local.drs_fake import DrsApiError
from local.stack import LocalStack
from reconciler import runtime
from reconciler.observation import Observation

WRITE_CALLS = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:TransactWriteItems",
    "dynamodb:DeleteItem",
)


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with LocalStack() as local:
        yield local


@pytest.fixture
def no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's retry back-off is recorded instead of slept (the retries still happen)."""
    delays: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=delays.append))
    return delays


class Interleaving:
    """An observer that lets another writer win the race between our read and our write: it
    runs `meanwhile` and then answers with an observation taken before."""

    def __init__(self, observation: Observation, meanwhile: Callable[[], None]) -> None:
        self.observation = observation
        self.meanwhile = meanwhile

    def observe(self, job_id: str, *, known: Observation | None = None) -> Observation:
        self.meanwhile()
        return self.observation


def dynamodb_writes(stack: LocalStack) -> int:
    return sum(stack.counter.calls[name] for name in WRITE_CALLS)


def post_plan(
    stack: LocalStack, waves: list[list[str]], *, is_drill: bool = True, name: str = "drill"
) -> dict[str, Any]:
    """POST a plan whose waves hold the given hostnames (registered with the fake first)."""
    body = {
        "name": name,
        "isDrill": is_drill,
        "waves": [
            {"name": f"wave {i + 1}", "sourceServerIds": stack.add_servers(hosts)}
            for i, hosts in enumerate(waves)
        ],
    }
    status, _, document = stack.http("POST", "/executions", body=body)
    assert status == 202, document
    result: dict[str, Any] = document
    return result


def complete_job(stack: LocalStack, job_id: str) -> None:
    """DRS runs the job to its end (PENDING -> STARTED -> COMPLETED); no event fires for that."""
    stack.fake.set_job_status(job_id, "STARTED")
    stack.fake.set_job_status(job_id, "COMPLETED")


def lose_the_answer(stack: LocalStack, *, job_created: bool) -> None:
    """The next StartRecovery answers 500 (the answer is lost), after creating its job or not.
    Either way it counts as sent in `stack.fake.call_counts()`."""
    original = stack.fake.start_recovery
    state = {"calls": 0}

    def flaky(params: Any = None, /, **kwargs: Any) -> Any:
        state["calls"] += 1
        if state["calls"] == 1:
            if job_created:
                original(params, **kwargs)
            else:
                stack.fake.calls.append(("StartRecovery", dict(params or {}, **kwargs)))  # sent, lost
            raise DrsApiError("InternalServerException", 500, "the answer was lost")
        return original(params, **kwargs)

    stack.fake.start_recovery = flaky  # type: ignore[method-assign]


def taken_after_readiness(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, source_server_id: str, *, is_drill: bool = False
) -> list[dict[str, Any]]:
    """Another operator's DRS job takes the server just after our readiness check found it free:
    a race the check cannot close, so DRS refuses our StartRecovery (ConflictException). Returns
    the list that receives that job (`["job"]` of its StartRecovery answer)."""
    executions = runtime.services().executions
    checked = executions._account_load
    taken: list[dict[str, Any]] = []

    def then_taken(target: Any) -> Any:
        load = checked(target)
        if not taken:
            request = {"sourceServers": [{"sourceServerID": source_server_id}], "isDrill": is_drill}
            taken.append(stack.fake.start_recovery(request))
        return load

    monkeypatch.setattr(executions, "_account_load", then_taken)
    return taken
