"""`Idempotency-Key` on the operating routes (POST /executions, .../resume, .../cancel), with
Powertools' idempotency utility over our table (`reconciler.runtime.idempotency_store`).

The same key with the same request (route, execution id, body as JSON) gets the answer the first
request got, for IDEMPOTENCY_HOURS, even when that answer never reached the client: a retried
POST never starts a second failover. The key is scoped per caller (the JWT `sub` or the IAM
caller's ARN), so two callers cannot see each other's answers. Only answers after which
something may have changed are remembered (`remember`: 202/409 of a create, 200 of resume and
cancel); a refusal that changed nothing (400, 404, a wrong-state 409) or a temporary failure
(503) is forgotten, so a retry is answered afresh. The same key with another request is a 422;
while the first request is still being answered, a 409 with Retry-After; a malformed key a 400.

A remembered answer too large for one item (a create's document of a very large plan) keeps its
status and headers, and its replay carries the execution's current document instead.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Collection
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.documents import read_execution
from reconciler.observability import logger, metrics_count
from reconciler.runtime import idempotency_store, services
from schemas.api import IDEMPOTENCY_KEY

from .http import JSON, error, unavailable

HEADER = "idempotency-key"
REPLAYED = "Idempotent-Replayed"
# A remembered body larger than this is not stored (an item holds at most 400 KB).
MAX_REMEMBERED_BODY = 200_000
_KEY = re.compile(IDEMPOTENCY_KEY.strip("^$"))


class _Forget(Exception):
    """The answer is not remembered: Powertools deletes the record, a retry runs again."""


def caller_of(event: APIGatewayProxyEventV2) -> str:
    """Who is asking, as API Gateway's authorizer established it ("anonymous" without one)."""
    authorizer = (event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    iam = authorizer.get("iam") or {}
    return str(claims.get("sub") or iam.get("userArn") or iam.get("callerId") or "anonymous")


def execution_id_for(event: APIGatewayProxyEventV2) -> str | None:
    """The execution id a create with a well-formed Idempotency-Key records: derived from the
    caller and the key, shaped as a UUID4, so a create re-run after its record was lost (a
    crash, an expired in-progress record) meets the execution it already recorded."""
    key = event.headers.get(HEADER)
    if key is None or not _KEY.fullmatch(key):
        return None
    digest = bytearray(hashlib.sha256(f"{caller_of(event)}\n{key}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40  # version 4
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return str(uuid.UUID(bytes=bytes(digest)))


def _request_of(event: APIGatewayProxyEventV2) -> dict[str, Any]:
    """What makes two requests the same: route, path and query parameters (a dry run is not the
    create), and the body as JSON (so key order and spacing do not matter), or as text."""
    try:
        text = event.decoded_body or ""
    except ValueError:
        text = event.body or ""
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = text
    query = event.query_string_parameters or {}
    return {"route": event.route_key, "path": event.path_parameters or {}, "query": query, "body": body}


def _stored(response: Response[str]) -> dict[str, Any]:
    body = response.body if isinstance(response.body, str) else ""
    headers = {k: v for k, v in (response.headers or {}).items() if isinstance(v, str)}
    if len(body) <= MAX_REMEMBERED_BODY:
        return {"statusCode": response.status_code, "headers": headers, "body": body}
    document = json.loads(body)
    execution = document.get("execution", document)
    return {
        "statusCode": response.status_code,
        "headers": headers,
        "body": None,
        "executionId": execution.get("executionId"),
        "message": document.get("message") if "execution" in document else None,
    }


def _replayed(stored: dict[str, Any]) -> Response[str]:
    body = stored.get("body")
    if body is None:  # too large to remember: the execution's current document
        found = read_execution(services().store, stored["executionId"])
        current = found[0].model_dump(by_alias=True) if found else None
        payload: Any = (
            {"message": stored["message"], "execution": current} if stored.get("message") else current
        )
        body = json.dumps(payload)
    return Response(stored["statusCode"], JSON, body, headers={**stored["headers"], REPLAYED: "true"})


def answer_once(
    event: APIGatewayProxyEventV2,
    context: LambdaContext | None,
    answer: Callable[[], Response[str]],
    *,
    remember: Collection[int],
    retry_after: str,
) -> Response[str]:
    """`answer()` once per (caller, Idempotency-Key); without the header, just `answer()`."""
    key = event.headers.get(HEADER)
    if key is None:
        return answer()
    if not _KEY.fullmatch(key):
        return error(400, "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    ran: list[Response[str]] = []

    def remembered(request: dict[str, Any]) -> dict[str, Any]:
        response = answer()
        ran.append(response)
        if response.status_code not in remember:
            raise _Forget
        return _stored(response)

    config = IdempotencyConfig(
        event_key_jmespath="[caller, key]",
        payload_validation_jmespath="request",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=services().settings.idempotency_hours * 3600,
    )
    if context is not None:
        config.register_lambda_context(context)
    once = idempotent_function(
        data_keyword_argument="request", persistence_store=idempotency_store(), config=config
    )(remembered)
    request = {"caller": caller_of(event), "key": key, "request": _request_of(event)}
    try:
        stored = once(request=request)
    except _Forget:
        return ran[0]
    except IdempotencyValidationError:
        metrics_count("IdempotencyKeyReused")
        return error(422, "this Idempotency-Key was used with a different request; use a new key")
    except IdempotencyAlreadyInProgressError:
        return error(
            409,
            "a request with this Idempotency-Key is still being answered; retry shortly",
            headers={"Retry-After": retry_after},
        )
    except IdempotencyPersistenceLayerError as problem:
        if ran:  # the request ran; only its record could not be kept: answer what it did
            logger.warning("idempotency record not kept", extra={"error": str(problem)})
            return ran[0]
        return unavailable(problem, retry_after, "temporarily unavailable, nothing was done; retry shortly")
    if ran:
        return ran[0]
    metrics_count("IdempotentReplays")
    return _replayed(stored)
