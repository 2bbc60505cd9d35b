"""The HTTP API end to end: the real start/read/reconcile handlers on the embedded stack.

Every request goes through `LocalStack.http`/`invoke`, i.e. an API Gateway v2 (or EventBridge)
event into the unmodified Lambda handler, against moto's DynamoDB and the DRS fake over HTTP.
"""

from __future__ import annotations

import re
import types
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import botocore.endpoint
import pytest

from local.lambda_events import http_event, launch_result
from local.stack import LocalStack
from reconciler import runtime
from reconciler.retry import RetryPolicy
from tests.conftest import complete_job, dynamodb_writes, post_plan

EXECUTION_KEYS = {
    "executionId",
    "name",
    "isDrill",
    "status",
    "stopOnPartial",
    "pausedBeforeWave",
    "cancelRequestedAt",
    "endTime",
    "createdAt",
    "updatedAt",
    "rtoSeconds",
    "rtoTargetSeconds",
    "rtoMet",
    "cleanupStatus",
    "waves",
}
WAVE_KEYS = {
    "waveNumber",
    "name",
    "status",
    "jobId",
    "startTime",
    "endTime",
    "error",
    "pauseBeforeWave",
    "startProblem",
    "startRetryAt",
    "accountId",
    "region",
    "accessProblem",
    "rtoSeconds",
    "rtoTargetSeconds",
    "rtoMet",
    "cleanupStatus",
    "cleanupRequestedAt",
    "cleanupJobIds",
    "cleanupError",
    "cleanupEndTime",
    "servers",
}
SERVER_KEYS = {
    "sourceServerId",
    "hostname",
    "launchStatus",
    "recoveryInstanceId",
    "recoveredInstanceId",
    "instanceType",
    "privateIp",
    "launchTime",
    "ec2State",
    "error",
    "recoveredAt",
    "rtoSeconds",
    "rtoTargetSeconds",
    "rtoMet",
}
JOB_ID = re.compile(r"drsjob-[0-9a-zA-Z]{17}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
TAG_EXECUTION = "drs-reconciler:executionId"
TAG_WAVE = "drs-reconciler:waveNumber"
# A well-formed source server id the fake never registers (its ids come from a seeded RNG).
NEVER_REGISTERED = "s-NeverRegistered00"


# -- helpers ------------------------------------------------------------------------------------


def header(headers: dict[str, str], name: str) -> str | None:
    """A response header, case-insensitively (HTTP header names are)."""
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)


def post(stack: LocalStack, body: Any) -> tuple[int, dict[str, str], Any]:
    """POST /executions. An exception escaping the handler is a Lambda error, which API Gateway
    answers with 500: report it as such so a test sees a status, not a traceback."""
    try:
        return stack.http("POST", "/executions", body=body)
    except Exception as error:
        return 500, {}, {"unhandledException": f"{type(error).__name__}: {error}"}


def plan(*waves: list[str], name: str = "drill", is_drill: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "isDrill": is_drill,
        "waves": [{"name": f"wave {i + 1}", "sourceServerIds": ids} for i, ids in enumerate(waves)],
    }


def drs_calls(stack: LocalStack, operation: str, since: int = 0) -> list[dict[str, Any]]:
    """The requests the DRS fake received for one operation (throttled ones included), from
    call number `since` on."""
    return [params for name, params in stack.fake.calls[since:] if name == operation]


def begin(stack: LocalStack) -> int:
    """Start observing: reset the AWS call counter; return the DRS fake's call mark."""
    stack.counter.reset()
    return len(stack.fake.calls)


def total_aws_calls(stack: LocalStack) -> int:
    return sum(stack.counter.calls.values())


def assert_nothing_happened(stack: LocalStack, since: int) -> None:
    """No DynamoDB write and no DRS start, seen from both the client and the fake's side."""
    assert dynamodb_writes(stack) == 0, dict(stack.counter.calls)
    assert stack.counter.calls["drs:StartRecovery"] == 0, dict(stack.counter.calls)
    assert drs_calls(stack, "StartRecovery", since) == []


@pytest.fixture(scope="class")
def shared() -> Iterator[LocalStack]:
    """One stack for a class of requests that must change nothing (each test checks it changed
    nothing, so sharing is safe); starting a stack costs ~0.5 s, this keeps the file fast."""
    with LocalStack() as local:
        yield local


# -- 1. POST a valid plan ---------------------------------------------------------------------


@pytest.mark.parametrize("is_drill", [True, False], ids=["drill", "recovery"])
def test_post_valid_plan_answers_202_with_the_execution_document(stack: LocalStack, is_drill: bool) -> None:
    # Given three waves of servers DRS knows, with hostnames registered in the fake
    hostnames = [["web-1", "web-2"], ["app-1"], ["db-1", "db-2", "db-3"]]
    waves = [stack.add_servers(hosts) for hosts in hostnames]
    stack.counter.reset()

    # When the plan is POSTed
    status, headers, document = stack.http("POST", "/executions", body=plan(*waves, is_drill=is_drill))

    # Then 202 with exactly the execution document
    assert status == 202, document
    assert set(document) == EXECUTION_KEYS
    execution_id = document["executionId"]
    assert str(uuid.UUID(execution_id)) == execution_id  # canonical, lowercase
    assert uuid.UUID(execution_id).version == 4
    assert document["name"] == "drill"
    assert document["isDrill"] is is_drill
    assert document["status"] == "RUNNING"
    assert TIMESTAMP.fullmatch(document["createdAt"]), document["createdAt"]
    assert TIMESTAMP.fullmatch(document["updatedAt"]), document["updatedAt"]
    assert document["updatedAt"] >= document["createdAt"]
    assert header(headers, "Location") == f"/executions/{execution_id}"

    assert [w["waveNumber"] for w in document["waves"]] == [1, 2, 3]
    for wave, ids, hosts in zip(document["waves"], waves, hostnames, strict=True):
        assert set(wave) == WAVE_KEYS
        assert [s["sourceServerId"] for s in wave["servers"]] == ids
        assert [s["hostname"] for s in wave["servers"]] == hosts
        for server in wave["servers"]:
            assert set(server) == SERVER_KEYS
            assert server["launchStatus"] == "PENDING"
        assert wave["endTime"] is None
        assert wave["error"] is None
        # a plan that names no target recovers in the hub's own account and Region
        assert (wave["accountId"], wave["region"]) == ("123456789012", "us-east-1")
        assert wave["accessProblem"] is None

    first, *later = document["waves"]
    assert first["status"] == "LAUNCHING"
    assert JOB_ID.fullmatch(first["jobId"] or ""), first["jobId"]
    assert TIMESTAMP.fullmatch(first["startTime"] or ""), first["startTime"]
    for wave in later:
        assert wave["status"] == "PENDING"
        assert wave["jobId"] is None
        assert wave["startTime"] is None

    # And DRS received exactly one StartRecovery: wave 1's servers, the drill flag, our tags
    assert stack.counter.calls["drs:StartRecovery"] == 1
    [start] = drs_calls(stack, "StartRecovery")
    assert start["sourceServers"] == [{"sourceServerID": sid} for sid in waves[0]]
    assert start["isDrill"] is is_drill
    assert start["tags"] == {TAG_EXECUTION: execution_id, TAG_WAVE: "1"}
    # and the job DRS created is the one the document names
    assert stack.fake.get_job(first["jobId"])["tags"][TAG_EXECUTION] == execution_id


# -- 2. GET, ETag and If-None-Match -------------------------------------------------------------


def test_get_returns_the_posted_document_with_one_query_and_honours_if_none_match(
    stack: LocalStack,
) -> None:
    # Given an execution just POSTed
    posted = post_plan(stack, [["web-1", "web-2"], ["db-1"]])
    execution_id = posted["executionId"]
    path = f"/executions/{execution_id}"

    # When it is read back
    stack.counter.reset()
    status, headers, document = stack.http("GET", path)

    # Then it is the same document, with an ETag, from exactly one DynamoDB Query and nothing else
    assert status == 200, document
    assert document == posted
    etag = header(headers, "ETag")
    assert etag and etag.startswith('"') and etag.endswith('"'), etag
    assert stack.counter.calls == {"dynamodb:Query": 1}

    # When it is read again with If-None-Match: <that ETag>
    stack.counter.reset()
    reply = stack.invoke("read", http_event("GET", path, headers={"If-None-Match": etag}))

    # Then 304 with an empty body (still one Query, no DRS/EC2, no write)
    assert reply["statusCode"] == 304, reply
    assert not reply.get("body")
    assert header(reply.get("headers") or {}, "ETag") == etag
    assert stack.counter.calls == {"dynamodb:Query": 1}

    # Given wave 1 then changes: every server launches and the DRS job completes, then a sweep
    first = posted["waves"][0]
    job_id = first["jobId"]
    for server in first["servers"]:
        stack.launch(job_id, server["sourceServerId"])
    complete_job(stack, job_id)
    stack.sweep()

    # When the same conditional GET is made
    status, headers, changed = stack.http("GET", path, headers={"If-None-Match": etag})

    # Then the full document comes back with a new ETag
    assert status == 200, changed
    new_etag = header(headers, "ETag")
    assert new_etag and new_etag != etag
    assert changed["waves"][0]["status"] == "COMPLETED"
    assert changed != posted

    # and the new ETag in turn gets 304
    status, _, body = stack.http("GET", path, headers={"If-None-Match": new_etag})
    assert status == 304
    assert body is None


# -- 4. DRS refuses the start ----------------------------------------------------------------


def test_drs_conflict_answers_409_and_records_the_failure(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a 3-wave plan whose wave 1 server another operator puts into a DRS job just after our
    # readiness check found it free (a race the check cannot close: DRS refuses the start)
    busy, other = stack.add_servers(["busy-1", "free-1"])
    second, third = stack.add_servers(["wave2-1"]), stack.add_servers(["wave3-1"])
    executions = runtime.services().executions
    checked = executions._account_load

    def then_taken(target: Any) -> Any:
        load = checked(target)
        stack.fake.start_recovery({"sourceServers": [{"sourceServerID": busy}], "isDrill": True})
        return load

    monkeypatch.setattr(executions, "_account_load", then_taken)
    since = begin(stack)

    # When the plan is POSTed
    status, _, reply = post(stack, plan([busy, other], second, third))

    # Then 409 naming ConflictException, with the recorded execution: wave 1 FAILED, others CANCELLED
    assert status == 409, reply
    assert "ConflictException" in reply["message"]
    execution = reply["execution"]
    assert set(execution) == EXECUTION_KEYS
    assert execution["status"] == "FAILED"
    first, *later = execution["waves"]
    assert first["status"] == "FAILED"
    assert "ConflictException" in (first["error"] or "")
    assert first["jobId"] is None
    assert TIMESTAMP.fullmatch(first["endTime"] or ""), first["endTime"]
    assert [w["status"] for w in later] == ["CANCELLED", "CANCELLED"]
    assert all(w["error"] for w in later)
    ours = [call for call in drs_calls(stack, "StartRecovery", since) if call.get("tags")]
    assert len(ours) == 1  # a conflict is not retried

    # And a GET of that execution shows the same document
    status, _, stored = stack.http("GET", f"/executions/{execution['executionId']}")
    assert status == 200
    assert stored == execution

    # And nothing of it is left in flight for the sweep
    assert stack.sweep()["visited"] == 0


def test_drs_throttling_a_first_wave_is_accepted_and_deferred_not_refused(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DRS throttles every StartRecovery attempt (our back-off pauses are recorded, not slept)
    delays: list[float] = []
    monkeypatch.setattr(runtime, "SLEEP", delays.append)
    runtime.reset()
    servers = stack.add_servers(["web-1"])
    later = stack.add_servers(["db-1"])
    stack.fake.throttle_next("StartRecovery", 10)
    since = begin(stack)

    # When a plan is POSTed
    status, _, reply = post(stack, plan(servers, later))

    # Then 202: the execution is recorded and wave 1's start deferred, saying why (a throttled
    # call started nothing; a client told "not started" would POST again and start it twice)
    assert status == 202, reply
    policy = RetryPolicy()
    attempts = len(drs_calls(stack, "StartRecovery", since))
    assert attempts == len(policy.start_pauses) + 1
    assert delays == list(policy.start_pauses)
    assert reply["status"] == "PENDING"
    assert [w["status"] for w in reply["waves"]] == ["PENDING", "PENDING"]
    assert "ThrottlingException" in (reply["waves"][0]["startProblem"] or "")
    assert reply["waves"][0]["startRetryAt"] is not None


def test_drs_throttling_the_server_lookup_is_a_busy_answer_not_a_crash(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DRS throttles every DescribeSourceServers (the lookup that validates a plan's servers)
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=lambda _: None))
    servers = stack.add_servers(["web-1"])
    stack.fake.throttle_next("DescribeSourceServers", 10)
    since = begin(stack)

    # When a valid plan is POSTed
    status, _, reply = post(stack, plan(servers))

    # Then a "busy, try again" answer with a JSON message (not an unhandled Lambda error), and
    # nothing written or started
    assert status in (429, 503), reply
    assert "Throttling" in reply["message"]
    assert_nothing_happened(stack, since)


# -- 5. GET of an unknown (well-formed) id ---------------------------------------------------------


def test_get_unknown_execution_is_404_after_one_query(stack: LocalStack) -> None:
    # Given an execution that exists, and a well-formed UUID4 that is not it
    posted = post_plan(stack, [["web-1"]])
    unknown = str(uuid.uuid4())
    assert unknown != posted["executionId"]
    begin(stack)

    # When the unknown one is requested
    status, headers, reply = stack.http("GET", f"/executions/{unknown}")

    # Then 404, after exactly one DynamoDB Query and no write, and no ETag
    assert status == 404, reply
    assert reply["message"]
    assert stack.counter.calls == {"dynamodb:Query": 1}
    assert header(headers, "ETag") is None


# -- Requests that must be refused and change nothing (3, 5, 6 and malformed DRS events) ----------

BodyBuilder = Callable[[LocalStack], tuple[Any, list[str]]]


def _servers(stack: LocalStack, count: int) -> list[str]:
    return stack.add_servers([f"host-{i:03d}" for i in range(count)])


def _not_json(stack: LocalStack) -> tuple[Any, list[str]]:
    return "{", ["body", "JSON object"]


def _json_array(stack: LocalStack) -> tuple[Any, list[str]]:
    return [plan(_servers(stack, 1))], ["body"]


def _empty_object(stack: LocalStack) -> tuple[Any, list[str]]:
    return {}, ["name: Field required", "isDrill: Field required", "waves: Field required"]


def _drill_as_string(stack: LocalStack) -> tuple[Any, list[str]]:
    return {**plan(_servers(stack, 1)), "isDrill": "yes"}, ["isDrill"]


def _drill_as_number(stack: LocalStack) -> tuple[Any, list[str]]:
    return {**plan(_servers(stack, 1)), "isDrill": 1}, ["isDrill"]


def _empty_name(stack: LocalStack) -> tuple[Any, list[str]]:
    return plan(_servers(stack, 1), name=""), ["name"]


def _no_waves(stack: LocalStack) -> tuple[Any, list[str]]:
    return plan(), ["waves", "needs 1 to 50 waves"]


def _empty_wave(stack: LocalStack) -> tuple[Any, list[str]]:
    return plan(_servers(stack, 1), []), ["waves[1]", "got 0"]


def _short_id(stack: LocalStack) -> tuple[Any, list[str]]:
    return plan(["s-123"]), ["'s-123'", "not a DRS source server id"]


def _path_traversal_id(stack: LocalStack) -> tuple[Any, list[str]]:
    return plan(["../../etc/passwd"]), ["'../../etc/passwd'", "not a DRS source server id"]


def _server_in_two_waves(stack: LocalStack) -> tuple[Any, list[str]]:
    a, b = _servers(stack, 2)
    return plan([a, b], [a]), [f"waves[1] ('wave 2'): {a} is also in wave 1"]


def _server_twice_in_a_wave(stack: LocalStack) -> tuple[Any, list[str]]:
    a, b = _servers(stack, 2)
    return plan([a, b, a]), [f"{a} is twice in this wave"]


def _too_many_servers(stack: LocalStack) -> tuple[Any, list[str]]:
    return plan(_servers(stack, 101)), ["needs 1 to 100 source servers, got 101"]


def _unknown_field(stack: LocalStack) -> tuple[Any, list[str]]:
    return {**plan(_servers(stack, 1)), "priority": "high"}, ["priority", "Extra inputs are not permitted"]


def _unknown_wave_field(stack: LocalStack) -> tuple[Any, list[str]]:
    body = plan(_servers(stack, 1))
    body["waves"][0]["delaySeconds"] = 30
    return body, ["waves.0.delaySeconds", "Extra inputs are not permitted"]


BAD_BODIES = [
    pytest.param(_not_json, id="not-json"),
    pytest.param(_json_array, id="json-array"),
    pytest.param(_empty_object, id="empty-object"),
    pytest.param(_drill_as_string, id="isDrill-yes"),
    pytest.param(_drill_as_number, id="isDrill-1"),
    pytest.param(_empty_name, id="empty-name"),
    pytest.param(_no_waves, id="no-waves"),
    pytest.param(_empty_wave, id="wave-without-servers"),
    pytest.param(_short_id, id="malformed-id"),
    pytest.param(_path_traversal_id, id="path-traversal-id"),
    pytest.param(_server_in_two_waves, id="server-in-two-waves"),
    pytest.param(_server_twice_in_a_wave, id="server-twice-in-a-wave"),
    pytest.param(_too_many_servers, id="101-servers"),
    pytest.param(_unknown_field, id="unknown-field"),
    pytest.param(_unknown_wave_field, id="unknown-wave-field"),
]


def _registered_with(suffix: str) -> Callable[[LocalStack], str]:
    return lambda stack: _servers(stack, 1)[0] + suffix


ODD_IDS = [
    pytest.param(lambda _: "s-" + "\uff11" * 17, id="fullwidth-digits"),
    pytest.param(lambda _: "s-" + "a" * 16 + "\u00e9", id="accented-letter"),
    pytest.param(lambda _: "s-" + "\u0430" * 17, id="cyrillic-lookalikes"),
    pytest.param(lambda _: "s-" + "a" * 8 + "\u200b" + "a" * 9, id="zero-width-space"),
    pytest.param(lambda _: "s-\x00" + "a" * 16, id="nul"),
    pytest.param(_registered_with("\x00"), id="registered-id+nul"),
    pytest.param(_registered_with("\t"), id="registered-id+tab"),
    pytest.param(lambda stack: "\u202e" + _servers(stack, 1)[0], id="rtl-override+registered-id"),
    pytest.param(_registered_with("\n"), id="registered-id+newline"),
]

_A_UUID4 = "3f6a1c6e-2b1e-4c5e-9b7a-6f2a6a0f0c11"

BAD_EXECUTION_IDS = [
    pytest.param(_A_UUID4.upper(), id="uppercase-uuid4"),
    pytest.param(str(uuid.uuid1()), id="uuid1"),
    pytest.param(str(uuid.uuid3(uuid.NAMESPACE_DNS, "x")), id="uuid3"),
    pytest.param("00000000-0000-0000-0000-000000000000", id="nil-uuid"),
    pytest.param(_A_UUID4.replace("-9b7a-", "-cb7a-"), id="uuid4-bad-variant"),
    pytest.param(_A_UUID4.replace("-", ""), id="uuid4-no-dashes"),
    pytest.param("{" + _A_UUID4 + "}", id="uuid4-braced"),
    pytest.param(_A_UUID4 + "0", id="uuid4-one-char-too-long"),
    pytest.param("' OR 1=1 --", id="sql-injection"),
    pytest.param("\u00e9" * 36, id="unicode"),
    pytest.param(_A_UUID4.replace("a", "\u0430"), id="uuid4-cyrillic-a"),
    pytest.param("a" * 10_000, id="10000-chars"),
]

PATH_TRICKS = [
    pytest.param("/executions/..%2F..%2Fetc", id="encoded-traversal"),
    pytest.param("/executions/../../etc", id="raw-traversal"),
    pytest.param("/executions/%00", id="encoded-nul"),
    pytest.param("/executions/\x00", id="raw-nul"),
    pytest.param("/executions/", id="empty-id"),
]

_DROP = object()


def _event(detail: dict[str, Any] | None = None, envelope: dict[str, Any] | None = None) -> dict[str, Any]:
    """A real-shaped Launch Result event with some fields changed (or dropped with `_DROP`)."""
    event = launch_result("drsjob-1234567890abcdef0", "s-1234567890abcdef0")
    for key, value in (detail or {}).items():
        if value is _DROP:
            del event["detail"][key]
        else:
            event["detail"][key] = value
    for key, value in (envelope or {}).items():
        if value is _DROP:
            del event[key]
        else:
            event[key] = value
    return event


MALFORMED_EVENTS = [
    pytest.param(_event(detail={"job-id": _DROP}), id="missing-job-id"),
    pytest.param(_event(detail={"job-id": 12345}), id="job-id-number"),
    pytest.param(_event(detail={"job-id": None}), id="job-id-null"),
    pytest.param(_event(detail={"job-id": "drsjob-short"}), id="job-id-malformed"),
    pytest.param(_event(detail={"job-id": "drsjob-1234567890abcdef0\n"}), id="job-id-newline"),
    pytest.param(_event(detail={"is-drill": "maybe"}), id="is-drill-maybe"),
    pytest.param(_event(detail={"is-drill": {"value": True}}), id="is-drill-object"),
    pytest.param(_event(detail={"state": ["RECOVERY_LAUNCH_SUCCEEDED"]}), id="state-list"),
    pytest.param(_event(envelope={"detail": "not an object"}), id="detail-string"),
    pytest.param(_event(envelope={"detail": _DROP}), id="detail-missing"),
    pytest.param(_event(envelope={"source": "aws.ec2"}), id="other-source"),
    pytest.param(
        _event(envelope={"detail-type": "DRS Source Server Data Replication Stalled"}), id="other-type"
    ),
    pytest.param(
        _event(envelope={"resources": "arn:aws:drs:us-east-1:123456789012:source-server/x"}),
        id="resources-string",
    ),
    pytest.param(_event(envelope={"account": _DROP}), id="missing-account"),
    pytest.param(_event(envelope={"time": "yesterday"}), id="bad-time"),
    pytest.param({}, id="empty-object"),
    pytest.param([], id="list"),
    pytest.param("garbage", id="string"),
    pytest.param("{", id="truncated-json-string"),
    pytest.param(None, id="null"),
    pytest.param(42, id="number"),
    pytest.param({"detail": {"job-id": "drsjob-1234567890abcdef0"}}, id="detail-only"),
]


class TestRefusedWithoutSideEffects:
    """Requests the API must refuse before anything is written or started. They share one stack
    (see `shared`): each one checks it left nothing behind."""

    # -- 3. Bad POST bodies --------------------------------------------------------------------

    @pytest.mark.parametrize("build", BAD_BODIES)
    def test_bad_post_body_is_refused_with_400_and_nothing_written(
        self, shared: LocalStack, build: BodyBuilder
    ) -> None:
        # Given a body with one defect (servers it names are registered, so only the defect is wrong)
        body, expected = build(shared)
        since = begin(shared)

        # When it is POSTed
        status, _, reply = post(shared, body)

        # Then 400 with a message and problems naming the defect; nothing written or started
        assert status == 400, reply
        assert set(reply) == {"message", "problems"}
        assert isinstance(reply["message"], str) and reply["message"]
        problems = reply["problems"]
        assert problems and all(isinstance(p, str) for p in problems)
        for fragment in expected:
            assert any(fragment in problem for problem in problems), (fragment, problems)
        assert_nothing_happened(shared, since)

    @pytest.mark.parametrize("make_id", ODD_IDS)
    def test_unicode_and_control_characters_in_ids_are_refused(
        self, shared: LocalStack, make_id: Callable[[LocalStack], str]
    ) -> None:
        # Given a source server id with a non-ASCII or control character
        bad = make_id(shared)
        since = begin(shared)

        # When a plan naming it is POSTed
        status, _, reply = post(shared, plan([bad]))

        # Then 400 naming it as malformed, before DRS is even asked; nothing written or started
        assert status == 400, reply
        assert any(repr(bad) in p and "not a DRS source server id" in p for p in reply["problems"]), reply
        assert_nothing_happened(shared, since)
        assert total_aws_calls(shared) == 0, dict(shared.counter.calls)

    def test_every_problem_of_a_plan_is_listed_at_once(self, shared: LocalStack) -> None:
        # Given a plan with a malformed id in wave 1, a duplicate in wave 2 and an empty wave 3
        a, b = _servers(shared, 2)
        since = begin(shared)

        # When it is POSTed
        status, _, reply = post(shared, plan(["s-123", a], [b, b], []))

        # Then all three problems are listed, each once, and nothing is written or started
        assert status == 400, reply
        problems = reply["problems"]
        assert len(problems) == 3, problems
        assert any("waves[0]" in p and "'s-123'" in p for p in problems), problems
        assert any("waves[1]" in p and f"{b} is twice in this wave" in p for p in problems), problems
        assert any("waves[2]" in p and "got 0" in p for p in problems), problems
        assert_nothing_happened(shared, since)

    def test_well_formed_but_unknown_server_is_refused(self, shared: LocalStack) -> None:
        # Given one registered server and one well-formed id DRS has never heard of
        [known] = _servers(shared, 1)
        unknown = shared.fake.describe_source_servers(filters={"sourceServerIDs": [NEVER_REGISTERED]})
        assert unknown["items"] == []
        since = begin(shared)

        # When a plan naming both is POSTed
        status, _, reply = post(shared, plan([known], [NEVER_REGISTERED]))

        # Then 400 listing only the unknown id, and nothing written or started
        assert status == 400, reply
        assert any(NEVER_REGISTERED in p for p in reply["problems"]), reply
        assert not any(known in p for p in reply["problems"]), reply
        assert_nothing_happened(shared, since)

    # -- 5. GET with malformed ids ---------------------------------------------------------------

    @pytest.mark.parametrize("bad_id", BAD_EXECUTION_IDS)
    def test_get_with_malformed_id_is_400_without_any_aws_call(self, shared: LocalStack, bad_id: str) -> None:
        # Given an id that is not a lowercase UUID4
        since = begin(shared)

        # When it is requested
        status, _, reply = shared.http("GET", f"/executions/{bad_id}")

        # Then 400 with an error document, and DynamoDB/DRS/EC2 were never called
        assert status == 400, reply
        assert reply["message"]
        assert total_aws_calls(shared) == 0, dict(shared.counter.calls)
        assert shared.fake.calls[since:] == []

    @pytest.mark.parametrize("path", PATH_TRICKS)
    def test_get_with_path_tricks_is_refused_without_any_aws_call(
        self, shared: LocalStack, path: str
    ) -> None:
        # Given a path that may not even match the one-segment route
        since = begin(shared)

        # When it is requested
        status, _, reply = shared.http("GET", path)

        # Then a client error (never 5xx), and no AWS call at all
        assert status in (400, 404), (status, reply)
        assert total_aws_calls(shared) == 0, dict(shared.counter.calls)
        assert shared.fake.calls[since:] == []

    # -- 6. Wrong method -------------------------------------------------------------------------

    @pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH", "POST"])
    def test_wrong_method_on_the_read_function_is_a_client_error(
        self, shared: LocalStack, method: str
    ) -> None:
        # Given an existing execution
        execution_id = post_plan(shared, [["web-1"]])["executionId"]
        before = shared.get_execution(execution_id)
        begin(shared)

        # When the read function is sent a method it does not serve
        reply = shared.invoke("read", http_event(method, f"/executions/{execution_id}"))

        # Then a 4xx (never 5xx), no AWS call, and the execution is untouched
        assert 400 <= reply["statusCode"] < 500, reply
        assert total_aws_calls(shared) == 0, dict(shared.counter.calls)
        assert shared.get_execution(execution_id) == before

    # -- malformed DRS events on the reconcile function -------------------------------------------

    @pytest.mark.parametrize("event", MALFORMED_EVENTS)
    def test_reconcile_rejects_malformed_events_without_touching_aws(
        self, shared: LocalStack, event: Any
    ) -> None:
        # Given a malformed DRS event (or not even an object)
        since = begin(shared)

        # When the reconcile function receives it
        result = shared.invoke("reconcile", event)

        # Then it is acknowledged as rejected with its problems, without raising, and no AWS call
        assert result["outcome"] == "rejected", result
        assert result["problems"] and all(isinstance(p, str) for p in result["problems"])
        assert total_aws_calls(shared) == 0, dict(shared.counter.calls)
        assert shared.fake.calls[since:] == []
