"""The only code that talks to DynamoDB, and the one place the version rule lives.

One table. An execution is `pk=EXEC#<id>, sk=EXEC`; each wave is `pk=EXEC#<id>, sk=WAVE#0001`
and holds its servers, so one Query reads a whole execution and one UpdateItem changes a whole
wave atomically. Two sparse, keys-only indexes: `byJob` (a wave from its DRS job id) and
`inflight` (waves with a job, or a requested start, that are not yet terminal; sharded so the
index's writes spread). Two more hold execution items only, for the list (`listed`,
`listedStatus` are written on those alone, so no wave write touches them): `byCreated` and
`byStatus`, newest first by `createdAt`, with the summary's attributes projected.
Every mutable item carries `version`; `_version_guard` states the rule once, after PynamoDB:
no stored version means the item must not exist, otherwise the stored version must equal the
one we read, and the write stores the next one (I3, I4).

A lost answer is not a failed write. botocore re-sends a request whose answer was lost (a 5xx,
a read timeout); when the first attempt committed, the re-sent conditional write fails its own
condition. So every write also stores a fresh write id (`writeId`, one uuid4 per logical write
call) in the same request, and a failed condition whose stored item carries our write id and the
version we meant to write is our own committed attempt: success (`LostAnswerRecovered`), not a
VersionConflict. Transactions also send an explicit `ClientRequestToken` (DynamoDB answers a
re-send within 10 minutes as the success it was) and apply the same write-id rule to every
failed action, for a token that expired.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from schemas.records import ExecutionRecord, WaveRecord

from .errors import (
    PermanentError,
    VersionConflict,
    cancellation_reasons,
    classify_aws_error,
    client_error_code,
)
from .lifecycle import listed_status, with_wave_event
from .observability import logger, metrics_count

JOB_INDEX = "byJob"
INFLIGHT_INDEX = "inflight"
LIST_INDEX = "byCreated"  # hash `listed` (LISTED on every execution item), range createdAt
LIST_STATUS_INDEX = "byStatus"  # hash `listedStatus`, range createdAt
LISTED = "EXECUTION"
INFLIGHT_SHARDS = 4
ITEM_LIMIT_BYTES = 400 * 1024
ITEM_GUARD_BYTES = 350 * 1024
TRANSACTION_GUARD_BYTES = 3_500_000  # DynamoDB allows 4 MB per transaction
EXECUTION_SK = "EXEC"
WRITE_ID = "writeId"  # the write id of the last write that landed on the item

_WAVE_ATTRS = tuple(field.alias or name for name, field in WaveRecord.model_fields.items())
_EXECUTION_ATTRS = tuple(field.alias or name for name, field in ExecutionRecord.model_fields.items())
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class WaveKey:
    pk: str
    sk: str

    def as_key(self) -> dict[str, Any]:
        return {"pk": {"S": self.pk}, "sk": {"S": self.sk}}


def execution_pk(execution_id: str) -> str:
    return f"EXEC#{execution_id}"


def wave_key(execution_id: str, wave_number: int) -> WaveKey:
    return WaveKey(execution_pk(execution_id), f"WAVE#{wave_number:04d}")


def inflight_shard(key: WaveKey) -> str:
    return f"S{zlib.crc32(f'{key.pk}|{key.sk}'.encode()) % INFLIGHT_SHARDS}"


def estimate_item_bytes(item: dict[str, Any]) -> int:
    """A conservative upper bound of DynamoDB's item size (names + JSON-encoded values)."""
    return sum(
        len(name.encode()) + len(json.dumps(value, default=str).encode()) for name, value in item.items()
    )


class TooLarge(PermanentError):
    """An item or a transaction would not fit DynamoDB's limits."""


def _version_guard(expected: int | None) -> tuple[str, dict[str, str], dict[str, Any], int]:
    """The version rule, stated once: (condition, names, values, version to write)."""
    if expected is None:
        return "attribute_not_exists(#pk)", {"#pk": "pk"}, {}, 1
    return "#version = :expected", {"#version": "version"}, {":expected": {"N": str(expected)}}, expected + 1


def new_write_id() -> str:
    """A fresh write id: one per logical write call (its re-sends carry the same one)."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class _Intent:
    """What one item write means to leave behind: our write id and the version it writes."""

    write_id: str
    version: int

    def landed_in(self, item: dict[str, Any] | None) -> bool:
        """The stored item (raw attribute values, as a failed condition returns it) is this very
        write: our write id, at the version we wrote."""
        if not item:
            return False
        stored_id = item.get(WRITE_ID, {}).get("S")
        stored_version = item.get("version", {}).get("N")
        return bool(stored_id == self.write_id and stored_version == str(self.version))


def _landed(error: ClientError, intents: Sequence[_Intent]) -> bool:
    """A failed condition that only our own committed attempt explains: a single write whose item
    carries our write id, or a cancelled transaction whose every failed action does."""
    code = client_error_code(error)
    if code == "ConditionalCheckFailedException":
        return len(intents) == 1 and intents[0].landed_in(error.response.get("Item"))
    if code != "TransactionCanceledException":
        return False
    reasons = error.response.get("CancellationReasons") or []
    failed = [
        (reason, intent)
        for reason, intent in zip(reasons, intents, strict=False)
        if str(reason.get("Code") or "None") != "None"
    ]
    return bool(failed) and all(
        reason.get("Code") == "ConditionalCheckFailed" and intent.landed_in(reason.get("Item"))
        for reason, intent in failed
    )


def _transaction_error(error: ClientError) -> Exception:
    """A failed condition in any action is a VersionConflict; anything else is classified as
    usual (a cancellation for a conflicting transaction or throttling is temporary)."""
    if "ConditionalCheckFailed" in cancellation_reasons(error):
        return VersionConflict(None, None)
    return classify_aws_error(error, "TransactWriteItems")


def _to_attrs(plain: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in plain.items()}


def from_attrs(item: dict[str, Any]) -> dict[str, Any]:
    """Raw attribute values (as in a ConditionalCheckFailed `Item`) to plain Python (numbers as
    int or float, not Decimal, so nested maps such as an event's detail stay JSON-ready)."""
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(inner) for inner in value]
    return value


def wave_from_item(item: dict[str, Any]) -> WaveRecord:
    return WaveRecord.model_validate(from_attrs(item))


class WaveStore:
    """DynamoDB access for executions and waves; clients are injected, never built here."""

    def __init__(self, client: Any, table_name: str, *, page_size: int | None = None) -> None:
        self._client = client
        self._table = table_name
        self._page = {"Limit": page_size} if page_size else {}

    # -- reads -------------------------------------------------------------------------------

    def get_execution(self, execution_id: str) -> tuple[ExecutionRecord, list[WaveRecord]] | None:
        """The execution and all its waves from one strongly consistent Query (one request
        unless the execution is larger than a 1 MB page)."""
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": "pk"},
            "ExpressionAttributeValues": {":pk": {"S": execution_pk(execution_id)}},
            "ConsistentRead": True,
        }
        while True:
            page = self._call("query", request)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        execution = None
        waves = []
        for raw in items:
            plain = from_attrs(raw)
            if plain.get("sk") == EXECUTION_SK:
                execution = ExecutionRecord.model_validate(plain)
            else:
                waves.append(WaveRecord.model_validate(plain))
        if execution is None:
            return None
        return execution, sorted(waves, key=lambda w: w.wave_number)

    def get_wave(self, key: WaveKey) -> WaveRecord | None:
        reply = self._call(
            "get_item", {"TableName": self._table, "Key": key.as_key(), "ConsistentRead": True}
        )
        item = reply.get("Item")
        return wave_from_item(item) if item else None

    def find_waves_by_job(self, job_id: str) -> list[WaveKey]:
        """Every wave whose DRS job has this id: job ids are unique per account and Region only,
        so waves of several targets may share one (the caller picks by the stored target)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": JOB_INDEX,
            "KeyConditionExpression": "#job = :job",
            "ExpressionAttributeNames": {"#job": "jobId"},
            "ExpressionAttributeValues": {":job": {"S": job_id}},
        }
        keys: list[WaveKey] = []
        while True:
            page = self._call("query", request)
            keys.extend(WaveKey(item["pk"]["S"], item["sk"]["S"]) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return keys
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def inflight_waves(self, first_shard: int = 0) -> Iterator[WaveKey]:
        """Every wave with a job that is not terminal, shard by shard from `first_shard`, page by page."""
        for offset in range(INFLIGHT_SHARDS):
            shard = (first_shard + offset) % INFLIGHT_SHARDS
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": INFLIGHT_INDEX,
                "KeyConditionExpression": "#inflight = :shard",
                "ExpressionAttributeNames": {"#inflight": "inflight"},
                "ExpressionAttributeValues": {":shard": {"S": f"S{shard}"}},
                **self._page,
            }
            while True:
                page = self._call("query", request)
                for item in page.get("Items", []):
                    yield WaveKey(item["pk"]["S"], item["sk"]["S"])
                if "LastEvaluatedKey" not in page:
                    break
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def list_executions(
        self,
        *,
        status: str | None,
        created_from: str | None,
        created_to: str | None,
        limit: int,
        start_key: dict[str, Any] | None,
    ) -> tuple[list[ExecutionRecord], dict[str, Any] | None]:
        """One page of execution items, newest first: one Query of `byStatus` (with a status)
        or `byCreated`, `createdAt` bounded by the inclusive window. Returns the records and the
        key to continue from (None on the last page). An index is eventually consistent: an
        execution created a moment ago may not be listed yet."""
        index, hash_name, hash_value = (
            (LIST_STATUS_INDEX, "listedStatus", status) if status else (LIST_INDEX, "listed", LISTED)
        )
        names = {"#h": hash_name}
        values: dict[str, Any] = {":h": {"S": hash_value}}
        condition = "#h = :h"
        if created_from or created_to:
            names["#c"] = "createdAt"
            if created_from and created_to:
                condition += " AND #c BETWEEN :from AND :to"
            else:
                condition += " AND #c >= :from" if created_from else " AND #c <= :to"
            if created_from:
                values[":from"] = {"S": created_from}
            if created_to:
                values[":to"] = {"S": created_to}
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start_key:
            request["ExclusiveStartKey"] = start_key
        page = self._call("query", request)
        records = [ExecutionRecord.model_validate(from_attrs(item)) for item in page.get("Items", [])]
        return records, page.get("LastEvaluatedKey")

    # -- writes ------------------------------------------------------------------------------

    def create_execution(
        self, execution: ExecutionRecord, waves: Sequence[WaveRecord]
    ) -> tuple[ExecutionRecord, list[WaveRecord]]:
        """Write a new execution and its waves all-or-nothing (none may exist yet); return them
        as stored."""
        condition, names, values, version = _version_guard(None)
        write_id = new_write_id()
        execution = execution.model_copy(update={"version": version})
        waves = [w.model_copy(update={"version": version}) for w in waves]
        actions = []
        exec_item = self._execution_item(execution)
        total = 0
        for plain in [exec_item, *(self._wave_item(w) for w in waves)]:
            total += self._guard_size(plain)
            if total > TRANSACTION_GUARD_BYTES:
                raise TooLarge(f"the execution's items exceed {TRANSACTION_GUARD_BYTES} bytes")
            put: dict[str, Any] = {
                "TableName": self._table,
                "Item": _to_attrs({**plain, WRITE_ID: write_id}),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
            if values:
                put["ExpressionAttributeValues"] = values
            actions.append({"Put": put})
        self._transact(actions, [_Intent(write_id, version)] * len(actions), "create execution")
        return execution, waves

    def write_wave(self, wave: WaveRecord, *, updated_at: str) -> WaveRecord:
        """Store `wave` if the stored version is still `wave.version`; return what was stored.

        Raises VersionConflict (with the current item when DynamoDB returns it) otherwise.
        """
        written, update = self._versioned_update(wave, updated_at)
        self._update(update, wave.version)
        return written

    def write_execution(self, execution: ExecutionRecord, *, updated_at: str) -> ExecutionRecord:
        """`write_wave` for the execution item (the operator's controls, the finish)."""
        written, update = self._versioned_execution_update(execution, updated_at)
        self._update(update, execution.version)
        return written

    def write_expiry(self, wave: WaveRecord, expires_at: int, *, updated_at: str) -> WaveRecord:
        """Give a wave its `expiresAt` (DynamoDB TTL) under the version rule, touching nothing
        else: the request SETs only expiresAt, version, updatedAt and the write id, so its size
        does not grow with the wave's servers. Returns the wave as stored; raises VersionConflict
        like `write_wave`."""
        key = wave_key(wave.execution_id, wave.wave_number)
        condition, names, values, version = _version_guard(wave.version)
        written = wave.model_copy(
            update={"expires_at": expires_at, "version": version, "updated_at": updated_at}
        )
        plain = {
            _alias(WaveRecord, "expires_at"): expires_at,
            _alias(WaveRecord, "version"): version,
            _alias(WaveRecord, "updated_at"): updated_at,
        }
        update = self._update_request(key, plain, (), (condition, names, values), new_write_id())
        self._update(update, wave.version)
        return written

    def write_waves(self, waves: Sequence[WaveRecord], *, updated_at: str) -> list[WaveRecord]:
        """`write_wave` for several waves, all or nothing (one transaction, each versioned)."""
        _, written = self.write_together(None, waves, updated_at=updated_at)
        return written

    def write_together(
        self, execution: ExecutionRecord | None, waves: Sequence[WaveRecord], *, updated_at: str
    ) -> tuple[ExecutionRecord | None, list[WaveRecord]]:
        """The execution item and waves in one transaction, each under the version rule."""
        write_id = new_write_id()
        pairs = [self._versioned_update(wave, updated_at, write_id) for wave in waves]
        updates = [update for _, update in pairs]
        intents = [_Intent(write_id, written.version) for written, _ in pairs]
        written_execution = None
        if execution is not None:
            written_execution, update = self._versioned_execution_update(execution, updated_at, write_id)
            updates.insert(0, update)
            intents.insert(0, _Intent(write_id, written_execution.version))
        if not updates:
            return written_execution, []
        actions = [
            {"Update": {**update, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}} for update in updates
        ]
        self._transact(actions, intents, "write together")
        return written_execution, [written for written, _ in pairs]

    def _transact(self, actions: list[dict[str, Any]], intents: Sequence[_Intent], what: str) -> None:
        """One TransactWriteItems with an explicit ClientRequestToken: botocore re-sends the same
        token after a lost answer, and DynamoDB answers a committed one as the success it was. A
        cancellation that only our own committed attempt explains (every failed action's item
        carries our write id) is that success too (a token older than 10 minutes)."""
        token = str(uuid.uuid4())
        extra = {
            "what": what,
            "clientRequestToken": token,
            "writeId": intents[0].write_id,
            "items": len(actions),
        }
        logger.info("transaction sent", extra=extra)
        try:
            self._client.transact_write_items(TransactItems=actions, ClientRequestToken=token)
        except ClientError as error:
            if _landed(error, intents):
                _recovered("TransactWriteItems", extra)
                return
            raise _transaction_error(error) from error
        except BotoCoreError as error:  # no answer at all (the SDK's retries ran out)
            raise classify_aws_error(error, "TransactWriteItems") from error

    def _update(self, update: dict[str, Any], expected: int | None) -> None:
        """Send one versioned UpdateItem built by `_update_request`; our own committed attempt,
        met again after a lost answer, is success."""
        intent = _Intent(
            update["ExpressionAttributeValues"][":writeId"]["S"], 1 if expected is None else expected + 1
        )
        try:
            self._client.update_item(**update, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as error:
            if client_error_code(error) == "ConditionalCheckFailedException":
                if _landed(error, [intent]):
                    key = update["Key"]
                    _recovered(
                        "UpdateItem",
                        {
                            "pk": key["pk"]["S"],
                            "sk": key["sk"]["S"],
                            "writeId": intent.write_id,
                            "version": intent.version,
                        },
                    )
                    return
                raise VersionConflict(expected, error.response.get("Item")) from error
            raise classify_aws_error(error, "UpdateItem") from error
        except BotoCoreError as error:  # no answer at all (the SDK's retries ran out)
            raise classify_aws_error(error, "UpdateItem") from error

    def _versioned_update(
        self, wave: WaveRecord, updated_at: str, write_id: str | None = None
    ) -> tuple[WaveRecord, dict[str, Any]]:
        """The UpdateItem request that replaces every attribute we own, under the version rule.
        A wave turning terminal gets its Wave Completed event in its outbox here, in the same
        write, whoever the writer is."""
        wave = with_wave_event(wave)
        key = wave_key(wave.execution_id, wave.wave_number)
        condition, names, values, version = _version_guard(wave.version)
        written = wave.model_copy(update={"version": version, "updated_at": updated_at})
        plain = self._wave_item(written)
        guard = (condition, names, values)
        return written, self._update_request(key, plain, _WAVE_ATTRS, guard, write_id or new_write_id())

    def _versioned_execution_update(
        self, execution: ExecutionRecord, updated_at: str, write_id: str | None = None
    ) -> tuple[ExecutionRecord, dict[str, Any]]:
        key = WaveKey(execution_pk(execution.execution_id), EXECUTION_SK)
        condition, names, values, version = _version_guard(execution.version)
        written = execution.model_copy(update={"version": version, "updated_at": updated_at})
        plain = self._execution_item(written)
        guard = (condition, names, values)
        return written, self._update_request(key, plain, _EXECUTION_ATTRS, guard, write_id or new_write_id())

    def _update_request(
        self,
        key: WaveKey,
        plain: dict[str, Any],
        owned: Sequence[str],
        guard: tuple[str, dict[str, str], dict[str, Any]],
        write_id: str,
    ) -> dict[str, Any]:
        """SET every attribute of `plain` (and the write id), REMOVE the `owned` ones it lacks,
        under the guard."""
        condition, names, values = guard
        self._guard_size(plain)
        set_names = [name for name in plain if name not in ("pk", "sk")]
        removed = [name for name in (*owned, "inflight") if name not in plain] if owned else []
        names = {**names, "#writeId": WRITE_ID}
        values = {**values, ":writeId": {"S": write_id}}
        sets = ["#writeId = :writeId"]
        for i, name in enumerate(set_names):
            names[f"#s{i}"] = name
            values[f":s{i}"] = _serializer.serialize(plain[name])
            sets.append(f"#s{i} = :s{i}")
        expression = "SET " + ", ".join(sets)
        if removed:
            for i, name in enumerate(removed):
                names[f"#r{i}"] = name
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
        return {
            "TableName": self._table,
            "Key": key.as_key(),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    # -- helpers -----------------------------------------------------------------------------

    def wave_item_bytes(self, wave: WaveRecord) -> int:
        """The estimated stored size of a wave's item (what `_guard_size` checks)."""
        return estimate_item_bytes(self._wave_item(wave))

    def _wave_item(self, wave: WaveRecord) -> dict[str, Any]:
        key = wave_key(wave.execution_id, wave.wave_number)
        plain: dict[str, Any] = {
            "pk": key.pk,
            "sk": key.sk,
            "itemType": "WAVE",
            **wave.model_dump(by_alias=True, exclude_none=True, mode="json"),
        }
        if (
            ((wave.job_id or wave.start_requested_at) and not wave.is_terminal)
            or wave.outbox
            or wave.cleanup_is_open
        ):
            plain["inflight"] = inflight_shard(key)
        return plain

    def _execution_item(self, execution: ExecutionRecord) -> dict[str, Any]:
        key = WaveKey(execution_pk(execution.execution_id), EXECUTION_SK)
        plain: dict[str, Any] = {
            "pk": key.pk,
            "sk": key.sk,
            "itemType": "EXECUTION",
            **execution.model_dump(by_alias=True, exclude_none=True, mode="json"),
            "listed": LISTED,
            "listedStatus": listed_status(execution).value,
        }
        if not execution.is_finished or execution.outbox:
            plain["inflight"] = inflight_shard(key)
        return plain

    @staticmethod
    def _guard_size(plain: dict[str, Any]) -> int:
        size = estimate_item_bytes(plain)
        if size > ITEM_GUARD_BYTES:
            raise TooLarge(f"item {plain.get('pk')}/{plain.get('sk')} would be ~{size} bytes")
        return size

    def _call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            reply: dict[str, Any] = getattr(self._client, operation)(**request)
        except (ClientError, BotoCoreError) as error:
            raise classify_aws_error(error, operation) from error
        return reply


def _alias(model: type[WaveRecord] | type[ExecutionRecord], field: str) -> str:
    return model.model_fields[field].alias or field


def _recovered(operation: str, keys: dict[str, Any]) -> None:
    """Our write landed though its answer was lost: the re-sent request met our own attempt."""
    logger.info("write landed; its answer was lost", extra={"operation": operation, **keys})
    metrics_count("LostAnswerRecovered")
