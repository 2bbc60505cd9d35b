"""Two kinds of failure, handled differently and visibly.

Permanent errors (a bad event, a plan DRS rejects, an item that cannot fit) are logged, counted
and not retried: retrying cannot help. Temporary errors (throttling, a service hiccup, too many
write conflicts) propagate so Lambda retries the event, and the sweep catches whatever is left.
`VersionConflict` is the store's domain error for a lost optimistic-concurrency race.
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
    }
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


def classify_aws_error(error: BaseException, what: str) -> ReconcilerError:
    """Map an AWS failure to a temporary or permanent domain error."""
    code = client_error_code(error)
    status = None
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code is None or code in THROTTLING_CODES or (isinstance(status, int) and status >= 500):
        return TemporaryError(f"{what}: {code or type(error).__name__}: {error}")
    return PermanentError(f"{what}: {code}: {error}")
