"""Two kinds of failure, handled differently and visibly.

Permanent errors (a bad event, a plan DRS rejects, an item that cannot fit) are logged, counted
and not retried: retrying cannot help. Temporary errors (throttling, a service hiccup, too many
write conflicts) propagate so Lambda retries the event, and the sweep catches whatever is left.
`VersionConflict` is the store's domain error for a lost optimistic-concurrency race.

`classify_aws_error` is the one table of which AWS answers are temporary: throttling, 5xx and
internal errors, a transaction in the way (`TransactionConflictException`,
`TransactionInProgressException`, a `TransactionCanceledException` cancelled only for a
transaction conflict or throttling), and a connection that failed or timed out. A temporary
error must never lose the work: the event or stream record is retried, and an HTTP caller gets
503 with Retry-After.
"""

from __future__ import annotations

from typing import Any

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "InternalServerException",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
        "InternalException",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "ThrottledException",
        "RequestThrottledException",
        "SlowDown",
        "EC2ThrottledException",
    }
)
# A transaction in the way: retry. TransactionConflictException refused ours without applying
# it; TransactionInProgressException answers a re-send of our own token while the first attempt
# is still running, so ours may yet commit (the store's callers confirm by reading when it matters:
# `Executions.create`).
TRANSACTION_BUSY_CODES = frozenset({"TransactionConflictException", "TransactionInProgressException"})
# Reasons of a cancelled transaction that pass (any other reason, e.g. a failed condition or a
# validation error, does not).
PASSING_CANCELLATION_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)


class ReconcilerError(Exception):
    """Base of the domain's errors."""


class PermanentError(ReconcilerError):
    """Retrying will not help; log, count, move on."""


class TemporaryError(ReconcilerError):
    """Worth retrying later (Lambda's retry or the next sweep)."""


class VersionConflict(ReconcilerError):
    """The conditional write lost: someone else wrote the item first.

    `current` is the stored item as DynamoDB returned it on the failed condition (raw attribute
    values), when the implementation returns it; None otherwise.
    """

    def __init__(self, expected_version: int | None, current: dict[str, Any] | None) -> None:
        super().__init__(f"version conflict (expected {expected_version})")
        self.expected_version = expected_version
        self.current = current


def client_error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (duck-typed, so no botocore import here)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def cancellation_reasons(error: BaseException) -> list[str]:
    """The reason codes of a cancelled transaction, in the order of its actions ("None" for an
    action that did not fail)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return []
    return [str(reason.get("Code") or "None") for reason in response.get("CancellationReasons") or []]


def is_temporary(error: BaseException) -> bool:
    """Whether retrying the same request later can succeed (see the module docstring)."""
    code = client_error_code(error)
    if code is None:
        # Not an AWS answer: botocore's connection failures and connect/read timeouts (nothing
        # answered, or the answer was lost), or another SDK error; retried, never dropped.
        return True
    if code in THROTTLING_CODES or code in TRANSACTION_BUSY_CODES:
        return True
    if code == "TransactionCanceledException":
        # Temporary only when every failed action failed for a passing reason (a cancellation
        # naming no reason at all is retried too: nothing says it cannot succeed).
        failed = {reason for reason in cancellation_reasons(error) if reason != "None"}
        return failed <= PASSING_CANCELLATION_REASONS
    status = None
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return isinstance(status, int) and status >= 500


def classify_aws_error(error: BaseException, what: str) -> ReconcilerError:
    """Map an AWS failure to a temporary or permanent domain error."""
    code = client_error_code(error)
    if is_temporary(error):
        detail = code or type(error).__name__
        reasons = cancellation_reasons(error)
        if reasons:
            detail = f"{detail} {reasons}"
        return TemporaryError(f"{what}: {detail}: {error}")
    return PermanentError(f"{what}: {code}: {error}")
