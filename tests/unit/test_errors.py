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

from reconciler.errors import PermanentError, TemporaryError, VersionConflict, classify_aws_error
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
