"""`GET /executions`: one page of the execution list from one Query, and its opaque page token.

The token is URL-safe base64 of a small JSON document: the key DynamoDB said to continue from
and a fingerprint of the filters it was issued for. Nothing in it is trusted: a token that does
not decode, names another kind of item, or was issued for other filters (a "foreign" token) is
refused as a 400 before DynamoDB is asked, so no token can make the Query fail or read outside
the index partition the filters select. It carries no secret (it only names an execution item's
key, which any reader may list anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from pydantic import ValidationError

from schemas.api import EXECUTION_ID, ExecutionList, ExecutionSummary, ListQuery
from schemas.times import iso_z

from .errors import ReconcilerError
from .lifecycle import listed_status
from .store import EXECUTION_SK, LISTED, WaveStore

_TOKEN_VERSION = 1
_STORED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


class ListRefused(ReconcilerError):
    """The list's query cannot be answered as asked (a 400): every problem, listed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_list_query(parameters: dict[str, str] | None) -> ListQuery:
    """The query string as a ListQuery, or ListRefused naming each bad parameter."""
    try:
        query = ListQuery.model_validate(parameters or {})
    except ValidationError as error:
        raise ListRefused(
            [f"{'.'.join(map(str, e['loc'])) or 'query'}: {e['msg']}" for e in error.errors()]
        ) from error
    if query.created_from and query.created_to and query.created_from > query.created_to:
        raise ListRefused(["createdFrom: must not be after createdTo"])
    return query


def _window(query: ListQuery) -> tuple[str | None, str | None]:
    return (
        iso_z(query.created_from) if query.created_from else None,
        iso_z(query.created_to) if query.created_to else None,
    )


def _fingerprint(query: ListQuery) -> str:
    filters = json.dumps([query.status, *_window(query)])
    return hashlib.sha256(filters.encode()).hexdigest()[:16]


def _index_key(query: ListQuery) -> tuple[str, str]:
    """The index hash attribute the query reads, and its value."""
    return ("listedStatus", query.status) if query.status else ("listed", LISTED)


def encode_token(query: ListQuery, last_key: dict[str, Any]) -> str:
    plain = {name: value["S"] for name, value in last_key.items()}
    document = json.dumps({"v": _TOKEN_VERSION, "q": _fingerprint(query), "k": plain}, separators=(",", ":"))
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode_token(query: ListQuery, token: str) -> dict[str, Any]:
    """The ExclusiveStartKey a token stands for, or ListRefused."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise ListRefused(["pageToken: not a page token of this API"]) from error
    if (
        not isinstance(document, dict)
        or document.get("v") != _TOKEN_VERSION
        or not isinstance(document.get("k"), dict)
    ):
        raise ListRefused(["pageToken: not a page token of this API"])
    if document.get("q") != _fingerprint(query):
        raise ListRefused(["pageToken: issued for other filters; start again without it"])
    key = document["k"]
    hash_name, hash_value = _index_key(query)
    expected = {"pk", "sk", "createdAt", hash_name}
    if set(key) != expected or not all(isinstance(v, str) for v in key.values()):
        raise ListRefused(["pageToken: not a page token of this API"])
    created_from, created_to = _window(query)
    valid = (
        key["pk"].startswith("EXEC#")
        and EXECUTION_ID.fullmatch(key["pk"].removeprefix("EXEC#")) is not None
        and key["sk"] == EXECUTION_SK
        and key[hash_name] == hash_value
        and _STORED_TIME.fullmatch(key["createdAt"]) is not None
        and (created_from is None or key["createdAt"] >= created_from)
        and (created_to is None or key["createdAt"] <= created_to)
    )
    if not valid:
        raise ListRefused(["pageToken: not a page token of this API"])
    return {name: {"S": value} for name, value in key.items()}


def list_executions(store: WaveStore, query: ListQuery) -> ExecutionList:
    """One page, newest first, from one Query."""
    start_key = decode_token(query, query.page_token) if query.page_token else None
    created_from, created_to = _window(query)
    records, last_key = store.list_executions(
        status=query.status,
        created_from=created_from,
        created_to=created_to,
        limit=query.limit,
        start_key=start_key,
    )
    rows = [
        ExecutionSummary(
            execution_id=record.execution_id,
            name=record.name,
            is_drill=record.is_drill,
            status=listed_status(record).value,
            wave_count=record.wave_count,
            created_at=record.created_at,
            end_time=record.end_time,
            paused_before_wave=record.paused_before,
            cancel_requested_at=record.cancel_requested_at,
        )
        for record in records
    ]
    return ExecutionList(executions=rows, next_page_token=encode_token(query, last_key) if last_key else None)
