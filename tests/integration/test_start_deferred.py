"""Transient DRS trouble never ends a recovery: a start DRS refuses for a reason that passes
(throttling, the concurrent-job quota, DRS out of reach) is deferred, shown on the wave, and
started once the trouble passes — exactly once; only a definitive refusal, or trouble that
outlasts the retry window, FAILS the wave (docs/start-protocol.md, "What each DRS answer does")."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from local.stack import LocalStack
from local.waiting import join_all
from reconciler import runtime
from reconciler.clients import client as aws_client
from reconciler.errors import TemporaryError
from reconciler.observe import TAG_EXECUTION, TAG_WAVE
from reconciler.runtime import services
from tests.conftest import complete_job, taken_after_readiness


class MovableClock:
    """One clock for our functions and the DRS fake, moved forward by the tests."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The in-invocation pauses between throttled attempts, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(runtime, "SLEEP", recorded.append)
    return recorded


@pytest.fixture
def timed(clock: MovableClock, pauses: list[float], monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    monkeypatch.setattr(runtime, "CLOCK", clock)
    with LocalStack(clock=clock) as local:
        yield local


def post(stack: LocalStack, waves: int = 2) -> tuple[int, dict[str, Any]]:
    body = {
        "name": "deferred drill",
        "isDrill": True,
        "waves": [
            {"name": f"w{n}", "sourceServerIds": stack.add_servers([f"h{n}-a", f"h{n}-b"])}
            for n in range(waves)
        ],
    }
    status, _, document = stack.http("POST", "/executions", body=body)
    return status, document


def wave(stack: LocalStack, execution_id: str, number: int) -> dict[str, Any]:
    found: dict[str, Any] = stack.get_execution(execution_id)["waves"][number - 1]
    return found


def starts(stack: LocalStack, execution_id: str, number: int) -> int:
    """StartRecovery requests DRS received for the wave (throttled ones included)."""
    return sum(
        1
        for name, request in list(stack.fake.calls)
        if name == "StartRecovery"
        and (request.get("tags") or {}).get(TAG_EXECUTION) == execution_id
        and (request.get("tags") or {}).get(TAG_WAVE) == str(number)
    )


def jobs_of(stack: LocalStack, execution_id: str, number: int) -> list[str]:
    return [
        job["jobID"]
        for job in stack.fake.describe_jobs({})["items"]
        if (job.get("tags") or {}).get(TAG_EXECUTION) == execution_id
        and (job.get("tags") or {}).get(TAG_WAVE) == str(number)
    ]


def finish_wave(stack: LocalStack, execution_id: str, number: int) -> None:
    """DRS launches every server of the wave, events arrive, the job completes, the sweep sees it."""
    current = wave(stack, execution_id, number)
    job = current["jobId"]
    stack.fake.set_job_status(job, "STARTED")
    for server in current["servers"]:
        stack.launch(job, server["sourceServerId"])
        stack.deliver(job, server["sourceServerId"])
    complete_job(stack, job)
    stack.sweep()


def quota_error() -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "ServiceQuotaExceededException", "Message": "Max concurrent jobs reached"},
            "ResponseMetadata": {"HTTPStatusCode": 402},
        },
        "StartRecovery",
    )


def quota_held_wave_2(stack: LocalStack, mocker: Any) -> tuple[str, Any, Any]:
    """A two-wave execution whose wave 1 ended while DRS refused every StartRecovery for its job
    quota: wave 2 deferred. Returns the execution id, the start client and its real method."""
    _, document = post(stack)
    execution_id = str(document["executionId"])
    client = aws_client("drs", retries=False)  # the start client of the hub's own target
    real = client.start_recovery
    mocker.patch.object(client, "start_recovery", side_effect=quota_error())
    finish_wave(stack, execution_id, 1)
    assert wave(stack, execution_id, 2)["startProblem"]
    return execution_id, client, real


def statuses(stack: LocalStack, execution_id: str) -> list[str]:
    return [w["status"] for w in stack.get_execution(execution_id)["waves"]]


def test_a_start_throttled_six_times_in_a_row_starts_once_the_throttling_passes(
    timed: LocalStack, clock: MovableClock, pauses: list[float]
) -> None:
    stack = timed
    status, document = post(stack)
    assert status == 202, document
    execution_id = document["executionId"]
    # Given DRS throttles the next six StartRecovery calls, when wave 1 ends
    stack.fake.throttle_next("StartRecovery", 6)
    finish_wave(stack, execution_id, 1)
    # Then wave 2 is deferred, not FAILED: it shows why and when it is tried again
    second = wave(stack, execution_id, 2)
    assert second["status"] == "PENDING", second
    assert "ThrottlingException" in (second["startProblem"] or "")
    assert second["startRetryAt"] is not None
    assert second["jobId"] is None
    # And the sweeps of the next minutes start it once the throttling passes
    sweeps = 0
    while wave(stack, execution_id, 2)["jobId"] is None:
        assert sweeps < 3, f"wave 2 not started after {sweeps} sweeps: {wave(stack, execution_id, 2)}"
        clock.advance(60)
        stack.sweep()
        sweeps += 1
    second = wave(stack, execution_id, 2)
    assert second["status"] == "LAUNCHING"
    assert second["startProblem"] is None and second["startRetryAt"] is None
    assert starts(stack, execution_id, 2) == 7  # six throttled, one accepted
    assert len(jobs_of(stack, execution_id, 2)) == 1  # started exactly once
    assert sweeps <= 2  # within about two minutes of sweeps
    assert pauses and all(p < 1 for p in pauses)  # only short pauses inside one invocation
    finish_wave(stack, execution_id, 2)
    assert stack.get_execution(execution_id)["status"] == "COMPLETED"
    assert statuses(stack, execution_id) == ["COMPLETED", "COMPLETED"]


def test_a_first_wave_drs_cannot_reach_is_accepted_deferred_and_started_later(
    timed: LocalStack, clock: MovableClock, mocker
) -> None:
    stack = timed
    client = aws_client("drs", retries=False)  # the start client of the hub's own target
    real = client.start_recovery
    mocker.patch.object(
        client, "start_recovery", side_effect=[EndpointConnectionError(endpoint_url="http://drs"), real]
    )
    status, document = post(stack)
    # A POST whose wave 1 could not reach DRS is accepted: the execution exists and will start
    assert status == 202, document
    first = document["waves"][0]
    assert first["status"] == "PENDING" and "DrsUnreachable" in first["startProblem"]
    assert stack.fake.describe_jobs({})["items"] == []
    mocker.patch.object(client, "start_recovery", side_effect=real)
    clock.advance(60)
    stack.sweep()
    assert wave(stack, document["executionId"], 1)["status"] == "LAUNCHING"
    assert len(jobs_of(stack, document["executionId"], 1)) == 1


def test_a_quota_refusal_is_deferred_until_a_job_ends(timed: LocalStack, clock: MovableClock, mocker) -> None:
    stack = timed
    _, document = post(stack)
    execution_id = document["executionId"]
    client = aws_client("drs", retries=False)  # the start client of the hub's own target
    real = client.start_recovery
    mocker.patch.object(client, "start_recovery", side_effect=quota_error())
    finish_wave(stack, execution_id, 1)
    second = wave(stack, execution_id, 2)
    assert second["status"] == "PENDING"
    assert "ServiceQuotaExceededException" in second["startProblem"]
    for _ in range(5):  # the quota holds for five minutes of sweeps: still deferred, never FAILED
        clock.advance(60)
        stack.sweep()
        assert wave(stack, execution_id, 2)["status"] == "PENDING"
    mocker.patch.object(client, "start_recovery", side_effect=real)
    clock.advance(60)
    stack.sweep()
    assert wave(stack, execution_id, 2)["status"] == "LAUNCHING"
    assert len(jobs_of(stack, execution_id, 2)) == 1


def test_trouble_that_outlasts_the_retry_window_fails_the_wave_saying_why(
    timed: LocalStack, clock: MovableClock, mocker
) -> None:
    stack = timed
    _, document = post(stack)
    execution_id = document["executionId"]
    client = aws_client("drs", retries=False)  # the start client of the hub's own target
    mocker.patch.object(client, "start_recovery", side_effect=quota_error())
    finish_wave(stack, execution_id, 1)
    window = services().settings.start_retry_window_seconds
    clock.advance(window + 60)
    stack.sweep()
    second = wave(stack, execution_id, 2)
    assert second["status"] == "FAILED"
    assert (
        "kept refusing StartRecovery" in second["error"]
        and "ServiceQuotaExceededException" in second["error"]
    )
    assert stack.get_execution(execution_id)["status"] == "PARTIAL"
    assert jobs_of(stack, execution_id, 2) == []


def test_cancelling_a_deferred_start_cancels_it_at_once_and_nothing_starts_later(
    timed: LocalStack, clock: MovableClock, mocker
) -> None:
    stack = timed
    execution_id, client, real = quota_held_wave_2(stack, mocker)
    status, _, cancelled = stack.http("POST", f"/executions/{execution_id}/cancel")
    assert status == 200, cancelled
    assert [w["status"] for w in cancelled["waves"]] == ["COMPLETED", "CANCELLED"]
    mocker.patch.object(client, "start_recovery", side_effect=real)
    clock.advance(120)
    stack.sweep()
    assert statuses(stack, execution_id) == ["COMPLETED", "CANCELLED"]
    assert stack.get_execution(execution_id)["status"] == "CANCELLED"
    assert jobs_of(stack, execution_id, 2) == []


def test_a_definitive_refusal_is_answered_409_and_never_starts_later(
    timed: LocalStack, clock: MovableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = timed
    body = {
        "name": "busy",
        "isDrill": True,
        "waves": [{"name": "w", "sourceServerIds": stack.add_servers(["x-1"])}],
    }
    taken_after_readiness(stack, monkeypatch, body["waves"][0]["sourceServerIds"][0])
    status, _, reply = stack.http("POST", "/executions", body=body)
    assert status == 409, reply
    execution_id = reply["execution"]["executionId"]
    for _ in range(3):
        clock.advance(600)
        stack.sweep()
    assert statuses(stack, execution_id) == ["FAILED"]
    assert jobs_of(stack, execution_id, 1) == []
    assert starts(stack, execution_id, 1) == 1


def test_many_callers_retrying_a_due_deferred_start_start_it_exactly_once(
    timed: LocalStack, clock: MovableClock, mocker
) -> None:
    stack = timed
    execution_id, client, real = quota_held_wave_2(stack, mocker)
    mocker.patch.object(client, "start_recovery", side_effect=real)
    clock.advance(120)  # the deferred start is due
    # When eight callers (stream follow-ups, sweeps) take the next step at once
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    executions = services().executions

    def caller() -> None:
        try:
            barrier.wait(timeout=10)
            executions.advance(execution_id)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    join_all(threads, what="eight callers taking the deferred start's next step")
    # Then one claim won, DRS got one accepted StartRecovery, and the wave has that job
    assert not errors, errors
    assert len(jobs_of(stack, execution_id, 2)) == 1
    assert wave(stack, execution_id, 2)["jobId"] == jobs_of(stack, execution_id, 2)[0]


# ------------------------------------------------------------------ a POST's answer never contradicts what happened
# (found by review): "nothing started" only when nothing was recorded, and a refused execution
# (409) never starts later, even when DynamoDB misbehaves between the write and the answer.


def table_executions(stack: LocalStack) -> list[str]:
    items = stack.dynamodb.scan(TableName=stack.table_name, ConsistentRead=True)["Items"]
    return [i["pk"]["S"].removeprefix("EXEC#") for i in items if i["sk"]["S"] == "EXEC"]


def test_a_create_that_committed_though_every_answer_failed_is_answered_202_and_starts_once(
    timed: LocalStack, clock: MovableClock, mocker: Any
) -> None:
    stack = timed
    client = services().store._client
    real = client.transact_write_items

    def committed_but_no_answer(**kwargs: Any) -> Any:
        real(**kwargs)  # the transaction commits; its answer, and every re-send's, fails
        raise ClientError(
            {
                "Error": {"Code": "TransactionInProgressException", "Message": "in progress"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "TransactWriteItems",
        )

    patcher = mocker.patch.object(client, "transact_write_items", side_effect=committed_but_no_answer)
    status, document = post(stack, waves=1)
    mocker.stop(patcher)
    # The create looked before answering: the execution exists, so it is accepted and started
    assert status == 202, document
    assert table_executions(stack) == [document["executionId"]]
    assert document["waves"][0]["status"] == "LAUNCHING"
    clock.advance(360)  # past the start grace: nothing starts a second time
    stack.sweep()
    assert len(jobs_of(stack, document["executionId"], 1)) == 1


def test_a_create_whose_outcome_cannot_be_told_names_the_execution_to_look_at(
    timed: LocalStack, mocker: Any
) -> None:
    stack = timed
    store = services().store
    mocker.patch.object(store, "create_execution", side_effect=TemporaryError("no answer"))
    mocker.patch.object(store, "get_execution", side_effect=TemporaryError("no answer either"))
    status, headers, reply = stack.http(
        "POST",
        "/executions",
        body={
            "name": "n",
            "isDrill": True,
            "waves": [{"name": "w", "sourceServerIds": stack.add_servers(["a"])}],
        },
    )
    assert status == 503, reply
    assert "nothing was started" not in reply["message"]
    assert "GET /executions/" in reply["message"]
    assert headers["Location"].startswith("/executions/") and headers["Retry-After"]


def test_a_refused_start_is_recorded_through_passing_trouble_and_never_starts_later(
    timed: LocalStack, clock: MovableClock, mocker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = timed
    sid = stack.add_servers(["x-1"])[0]
    taken = taken_after_readiness(stack, monkeypatch, sid)
    body = {"name": "busy", "isDrill": True, "waves": [{"name": "w", "sourceServerIds": [sid]}]}
    store = services().store
    real = store.write_waves
    troubles = [TemporaryError("throttled"), TemporaryError("throttled")]

    def after_trouble(*args: Any, **kwargs: Any) -> Any:
        if troubles:
            raise troubles.pop()
        return real(*args, **kwargs)

    patcher = mocker.patch.object(store, "write_waves", side_effect=after_trouble)
    status, _, reply = stack.http("POST", "/executions", body=body)
    mocker.stop(patcher)
    assert status == 409, reply
    execution_id = reply["execution"]["executionId"]
    assert reply["execution"]["waves"][0]["status"] == "FAILED"
    complete_job(stack, taken[0]["job"]["jobID"])  # the job in the way ends
    clock.advance(360)
    stack.sweep()
    assert jobs_of(stack, execution_id, 1) == []
