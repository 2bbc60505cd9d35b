"""What each answer to StartRecovery proves (reconciler.starts.classify_start_failure, the table of
docs/start-protocol.md) and the one retry policy's arithmetic (reconciler/retry.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from reconciler.errors import PermanentError, TemporaryError, VersionConflict
from reconciler.retry import AGAIN, Contended, RetryPolicy
from reconciler.starts import NO_CREDENTIALS, UNREACHABLE, Answer, StartAnswer, classify_start_failure

ENDPOINT = "https://drs.us-east-1.amazonaws.com/"


def drs_error(code: str | None, status: int | None, message: str | None = "the message") -> ClientError:
    response: dict[str, Any] = {"Error": {}}
    if code is not None:
        response["Error"]["Code"] = code
    if message is not None:
        response["Error"]["Message"] = message
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, "StartRecovery")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 429),
        ("TooManyRequestsException", 429),
        ("RequestLimitExceeded", 503),  # a passing code wins over a 5xx status: nothing started
        ("ServiceQuotaExceededException", 402),
        ("ExpiredTokenException", 400),
        ("ExpiredToken", 403),
    ],
)
def test_a_passing_refusal_defers_the_start(code: str, status: int):
    answer = classify_start_failure(drs_error(code, status))
    assert answer == StartAnswer(Answer.DEFERRED, code=code, message="the message")
    assert answer.reason == f"{code}: the message"


@pytest.mark.parametrize(
    ("code", "status"), [("InternalServerException", 500), ("BadGateway", 502), ("X", 599)]
)
def test_a_server_error_may_have_started_a_job(code: str, status: int):
    assert classify_start_failure(drs_error(code, status)) == StartAnswer(
        Answer.LOST, code=code, message="the message"
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ConflictException", 409),
        ("ValidationException", 400),
        ("AccessDeniedException", 403),
        ("UninitializedAccountException", 400),
        ("ResourceNotFoundException", 404),
        ("SomethingElse", 499),
    ],
)
def test_a_definitive_refusal_is_refused(code: str, status: int):
    assert classify_start_failure(drs_error(code, status)) == StartAnswer(
        Answer.REFUSED, code=code, message="the message"
    )


def test_an_answer_without_code_status_or_message_is_still_classified():
    bare = classify_start_failure(drs_error(None, None, message=None))
    assert bare.kind is Answer.REFUSED and bare.code == "Error"
    assert bare.message == str(drs_error(None, None, message=None))
    assert classify_start_failure(drs_error("InternalServerException", None)).kind is Answer.REFUSED
    empty = ClientError({}, "StartRecovery")
    assert classify_start_failure(empty) == StartAnswer(Answer.REFUSED, code="Error", message=str(empty))


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (EndpointConnectionError(endpoint_url=ENDPOINT), Answer.DEFERRED, UNREACHABLE),
        (ConnectTimeoutError(endpoint_url=ENDPOINT), Answer.DEFERRED, UNREACHABLE),
        (NoCredentialsError(), Answer.DEFERRED, NO_CREDENTIALS),
        (
            PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
            Answer.DEFERRED,
            NO_CREDENTIALS,
        ),
        (CredentialRetrievalError(provider="sts", error_msg="expired"), Answer.DEFERRED, NO_CREDENTIALS),
        # the request may have reached DRS: a job may exist
        (ReadTimeoutError(endpoint_url=ENDPOINT), Answer.LOST, "ReadTimeoutError"),
        (ConnectionClosedError(endpoint_url=ENDPOINT), Answer.LOST, "ConnectionClosedError"),
    ],
)
def test_no_answer_at_all_is_deferred_only_when_the_request_never_left(
    error: Exception, kind: Answer, code: str
):
    answer = classify_start_failure(error)
    assert (answer.kind, answer.code, answer.message) == (kind, code, str(error))
    assert answer.job is None


def test_the_names_of_the_unanswered_reasons():
    assert (UNREACHABLE, NO_CREDENTIALS) == ("DrsUnreachable", "CredentialsUnavailable")
    assert StartAnswer(Answer.DEFERRED, code="C", message="m").reason == "C: m"


# -- RetryPolicy ---------------------------------------------------------------------------------


class Attempts:
    """An attempt that answers from a script: a value to return or an exception to raise."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls = 0
        self.last: Any = None

    def __call__(self) -> Any:
        self.calls += 1
        step = self.script.pop(0) if self.script else self.last
        self.last = step
        if isinstance(step, Exception):
            raise step
        return step


def test_a_lost_race_is_decided_again_until_it_settles():
    attempt = Attempts(VersionConflict(1, None), AGAIN, VersionConflict(2, None), "settled")
    assert RetryPolicy().run(attempt, what="x") == "settled"
    assert attempt.calls == 4


def test_losing_every_race_is_contended_and_temporary():
    attempt = Attempts(VersionConflict(1, None))
    with pytest.raises(Contended) as raised:
        RetryPolicy(conflict_attempts=4).run(attempt, what="claim wave 2")
    assert attempt.calls == 4
    assert isinstance(raised.value, TemporaryError)
    assert str(raised.value) == "claim wave 2: lost 4 version races in a row; try again"
    always_again = Attempts(AGAIN)
    with pytest.raises(Contended):
        RetryPolicy().run(always_again, what="x")
    assert always_again.calls == RetryPolicy().conflict_attempts == 6


def test_other_errors_are_not_retried_by_run():
    attempt = Attempts(PermanentError("no"), "never")
    with pytest.raises(PermanentError):
        RetryPolicy().run(attempt, what="x")
    assert attempt.calls == 1


def test_a_write_through_trouble_is_asked_again_after_each_pause():
    slept: list[float] = []
    attempt = Attempts(TemporaryError("throttled"), TemporaryError("throttled"), "written")
    assert RetryPolicy().through_trouble(attempt, sleep=slept.append) == "written"
    assert slept == [0.2, 0.6]
    lasting = Attempts(TemporaryError("throttled"))
    slept.clear()
    with pytest.raises(TemporaryError):
        RetryPolicy().through_trouble(lasting, sleep=slept.append)
    assert slept == [0.2, 0.6, 1.5] and lasting.calls == 4
    conflict = Attempts(VersionConflict(1, None))
    with pytest.raises(VersionConflict):
        RetryPolicy().through_trouble(conflict, sleep=slept.append)
    assert conflict.calls == 1


def test_the_policy_defaults_are_those_of_the_protocol():
    policy = RetryPolicy()
    assert policy.start_pauses == (0.2, 0.6)
    assert policy.start_backoff == timedelta(seconds=15) and policy.start_backoff_cap == timedelta(seconds=60)
    assert policy.start_window == timedelta(hours=1)


@pytest.mark.parametrize(
    ("deferred_for", "wait"),
    [(0, 15), (10, 15), (15, 15), (40, 40), (60, 60), (61, 60), (3000, 60)],
)
def test_a_deferred_start_waits_as_long_as_it_was_deferred_between_the_bounds(deferred_for: int, wait: int):
    now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    since = now - timedelta(seconds=deferred_for)
    assert RetryPolicy().next_start_at(since, now) == now + timedelta(seconds=wait)


def test_the_retry_window_closes_at_its_end():
    since = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    policy = RetryPolicy(start_window=timedelta(minutes=30))
    assert not policy.window_closed(since, since + timedelta(minutes=30) - timedelta(microseconds=1))
    assert policy.window_closed(since, since + timedelta(minutes=30))
    assert policy.window_closed(since, since + timedelta(hours=2))
