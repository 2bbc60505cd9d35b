"""Which AWS failures are temporary (retried, never dropped) and which are permanent: the table of
`reconciler.errors.classify_aws_error`, and the store's use of it for its writes."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError as BotoClientError
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from reconciler.errors import (
    PermanentError,
    ReconcilerError,
    TemporaryError,
    VersionConflict,
    cancellation_reasons,
    classify_aws_error,
    client_error_code,
    is_temporary,
)
from reconciler.store import WaveStore
from tests.unit.test_plan_and_store import records


def client_error(code: str, status: int = 400, reasons: list[str] | None = None) -> BotoClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": reason} for reason in reasons]
    return BotoClientError(response, "Operation")  # type: ignore[arg-type]


TEMPORARY = [
    # DynamoDB: a transaction in the way of ours
    client_error("TransactionConflictException"),
    client_error("TransactionInProgressException"),
    client_error("TransactionCanceledException", reasons=["TransactionConflict", "None"]),
    client_error("TransactionCanceledException", reasons=["None", "ThrottlingError"]),
    client_error("TransactionCanceledException", reasons=["ProvisionedThroughputExceeded"]),
    client_error("TransactionCanceledException", reasons=["TransactionConflict", "ThrottlingError"]),
    client_error(
        "TransactionCanceledException",
        reasons=["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "None"],
    ),
    # throttling, of every service
    client_error("ProvisionedThroughputExceededException"),
    client_error("ThrottlingException"),
    client_error("ThrottlingException", 429),
    client_error("RequestLimitExceeded", 503),
    # internal errors, and any 5xx
    client_error("InternalServerError", 500),
    client_error("InternalServerException", 500),
    client_error("InternalError", 500),
    client_error("InternalException", 500),
    client_error("ServiceUnavailable", 503),
    client_error("SomethingNew", 502),
    # no answer at all
    ConnectTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/"),
    ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/"),
    EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/"),
    ConnectionClosedError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/"),
]
PERMANENT = [
    client_error("ValidationException"),
    client_error("AccessDeniedException"),
    client_error("AccessDeniedException", 403),
    client_error("UnauthorizedOperation", 403),
    client_error("ResourceNotFoundException"),
    client_error("ItemCollectionSizeLimitExceededException"),
    client_error("TransactionCanceledException", reasons=["ValidationError", "None"]),
    client_error("TransactionCanceledException", reasons=["TransactionConflict", "ValidationError"]),
    client_error("TransactionCanceledException", reasons=["ConditionalCheckFailed", "TransactionConflict"]),
]


def _name(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    reasons = [r["Code"] for r in response.get("CancellationReasons", [])]
    return f"{code or type(error).__name__}{reasons or ''}"


@pytest.mark.parametrize("error", TEMPORARY, ids=_name)
def test_temporary_failures_are_retried(error: Exception):
    classified = classify_aws_error(error, "Call")
    assert isinstance(classified, TemporaryError), classified
    assert "Call" in str(classified)


@pytest.mark.parametrize("error", PERMANENT, ids=_name)
def test_permanent_failures_are_not(error: Exception):
    assert isinstance(classify_aws_error(error, "Call"), PermanentError)


class FailingClient:
    """A DynamoDB client whose every write fails with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def transact_write_items(self, **_: Any) -> None:
        raise self.error

    def update_item(self, **_: Any) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        client_error("TransactionConflictException"),
        client_error("TransactionCanceledException", reasons=["TransactionConflict"]),
        client_error("ProvisionedThroughputExceededException"),
        client_error("InternalServerError", 500),
        ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/"),
        ConnectTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/"),
    ],
    ids=_name,
)
def test_every_store_write_raises_a_temporary_failure_as_temporary(error: Exception):
    store = WaveStore(FailingClient(error), "table")
    execution, waves = records()
    for write in (
        lambda: store.create_execution(execution, waves),
        lambda: store.write_wave(waves[0], updated_at="2026-11-26T10:00:01.000Z"),
        lambda: store.write_execution(execution, updated_at="2026-11-26T10:00:01.000Z"),
        lambda: store.write_together(execution, waves, updated_at="2026-11-26T10:00:01.000Z"),
        lambda: store.write_expiry(waves[0], 1_900_000_000, updated_at="2026-11-26T10:00:01.000Z"),
    ):
        with pytest.raises(TemporaryError):
            write()


def test_a_failed_condition_is_still_a_version_conflict():
    store = WaveStore(FailingClient(client_error("ConditionalCheckFailedException")), "table")
    _, waves = records()
    with pytest.raises(VersionConflict):
        store.write_wave(waves[0], updated_at="2026-11-26T10:00:01.000Z")


# -- the pieces of the table -----------------------------------------------------------------------


class NotAClientError(Exception):
    def __init__(self, response: object) -> None:
        super().__init__("not from botocore")
        self.response = response


def test_the_code_of_an_answer_is_read_from_its_error_only():
    assert client_error_code(client_error("ThrottlingException")) == "ThrottlingException"
    assert client_error_code(NotAClientError({"Error": {"Code": 404}})) == "404"  # duck-typed, as text
    assert client_error_code(NotAClientError({"Error": {}})) is None
    assert client_error_code(NotAClientError({})) is None
    assert client_error_code(NotAClientError("Error")) is None
    assert client_error_code(ValueError("no response")) is None


def test_the_reasons_of_a_cancellation_name_every_action_in_order():
    error = NotAClientError(
        {"CancellationReasons": [{"Code": "None"}, {}, {"Code": None}, {"Code": "ConditionalCheckFailed"}]}
    )
    assert cancellation_reasons(error) == ["None", "None", "None", "ConditionalCheckFailed"]
    assert cancellation_reasons(NotAClientError({"CancellationReasons": None})) == []
    assert cancellation_reasons(NotAClientError({})) == []
    assert cancellation_reasons(NotAClientError(["CancellationReasons"])) == []
    assert cancellation_reasons(ValueError("no response")) == []


@pytest.mark.parametrize(
    ("error", "temporary"),
    [
        (client_error("SomethingNew", 500), True),
        (client_error("SomethingNew", 599), True),
        (client_error("SomethingNew", 499), False),
        (client_error("SomethingNew", 400), False),
        (
            NotAClientError(
                {"Error": {"Code": "SomethingNew"}, "ResponseMetadata": {"HTTPStatusCode": "503"}}
            ),
            False,
        ),
        (NotAClientError({"Error": {"Code": "SomethingNew"}}), False),
        (NotAClientError({"Error": {"Code": "Throttling"}}), True),
        (NotAClientError({"Error": {"Code": "SlowDown"}}), True),
        (NotAClientError({"Error": {"Code": "EC2ThrottledException"}}), True),
        # a cancellation naming no failed action is retried: nothing says it cannot succeed
        (client_error("TransactionCanceledException"), True),
        (client_error("TransactionCanceledException", reasons=[]), True),
        (client_error("TransactionCanceledException", reasons=["None", "None"]), True),
        (client_error("TransactionCanceledException", 500, reasons=["ConditionalCheckFailed"]), False),
        (ValueError("not an AWS answer"), True),
    ],
    ids=lambda value: _name(value) if isinstance(value, Exception) else str(value),
)
def test_what_is_temporary(error: Exception, temporary: bool):
    assert is_temporary(error) is temporary


def test_a_classified_error_says_what_failed_and_why():
    throttled = classify_aws_error(client_error("ThrottlingException"), "UpdateItem")
    assert str(throttled) == f"UpdateItem: ThrottlingException: {client_error('ThrottlingException')}"
    conflict = client_error("TransactionCanceledException", reasons=["TransactionConflict", "None"])
    assert str(classify_aws_error(conflict, "TransactWriteItems")) == (
        f"TransactWriteItems: TransactionCanceledException ['TransactionConflict', 'None']: {conflict}"
    )
    timeout = ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")
    assert str(classify_aws_error(timeout, "Query")) == f"Query: ReadTimeoutError: {timeout}"
    refused = classify_aws_error(client_error("ValidationException"), "PutItem")
    assert type(refused) is PermanentError
    assert str(refused) == f"PutItem: ValidationException: {client_error('ValidationException')}"
    assert type(throttled) is TemporaryError
    assert all(isinstance(e, ReconcilerError) for e in (throttled, refused))


def test_a_version_conflict_carries_what_was_expected_and_what_is_stored():
    conflict = VersionConflict(3, {"version": {"N": "4"}})
    assert conflict.expected_version == 3 and conflict.current == {"version": {"N": "4"}}
    assert str(conflict) == "version conflict (expected 3)"
    assert isinstance(conflict, ReconcilerError)
