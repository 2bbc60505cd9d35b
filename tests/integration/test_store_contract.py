"""The store's contract against DynamoDB (moto, our table from serverless.yml): the version rule,
the write-id rule that turns a lost answer back into the success it was, transactions, the two
indexes, and the storage format other writers and readers rely on (reconciler/store.py).

These tests start moto alone, not the whole local stack of the `stack` fixture (every client, the
DRS fake's server, the fault layer: about a second per test), and build their client from one
session shared by the module (botocore loads DynamoDB's model once): about 20 ms per test, which
is what lets mutation testing (tests/reliability/mutation.py) run them for every mutant of
reconciler/store.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws

from local.serverless import table_properties
from reconciler import store as store_module
from reconciler.errors import PermanentError, TemporaryError, VersionConflict
from reconciler.lifecycle import WAVE_COMPLETED
from reconciler.store import (
    INFLIGHT_SHARDS,
    ITEM_GUARD_BYTES,
    TRANSACTION_GUARD_BYTES,
    TooLarge,
    WaveKey,
    WaveStore,
    estimate_item_bytes,
    execution_pk,
    from_attrs,
    wave_key,
)
from schemas.records import (
    ExecutionRecord,
    ExecutionStatus,
    OutboxEvent,
    ServerRecord,
    WaveRecord,
    WaveStatus,
)
from tests.unit.test_start_protocol import MemoryStore

TABLE = "drs-wave-reconciler-test"
_SESSION = boto3.session.Session(
    aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
)
_PROPERTIES = table_properties()
CREATED = "2026-11-26T10:00:00.000Z"
LATER = "2026-11-26T10:00:05.000Z"
LATEST = "2026-11-26T10:00:09.000Z"


def plan(
    execution_id: str = "e1", waves: int = 2, servers: int = 2
) -> tuple[ExecutionRecord, list[WaveRecord]]:
    execution = ExecutionRecord(
        execution_id=execution_id,
        name="drill",
        is_drill=True,
        wave_count=waves,
        version=0,
        created_at=CREATED,
        updated_at=CREATED,
    )
    return execution, [
        WaveRecord(
            execution_id=execution_id,
            wave_number=number,
            name=f"wave {number}",
            is_drill=True,
            servers=tuple(
                ServerRecord(source_server_id=f"s-{number:02d}{i:015d}", hostname=f"host-{number}-{i}")
                for i in range(servers)
            ),
            version=0,
            created_at=CREATED,
            updated_at=CREATED,
        )
        for number in range(1, waves + 1)
    ]


class Recorder:
    """Stands in for the store's logger and metrics: what was logged and counted."""

    def __init__(self) -> None:
        self.logs: list[tuple[str, str, dict[str, Any]]] = []
        self.metrics: list[str] = []

    def _log(self, level: str) -> Any:
        return lambda message, extra=None: self.logs.append((level, message, dict(extra or {})))

    def __getattr__(self, level: str) -> Any:
        return self._log(level)

    def count(self, name: str, value: float = 1, **_: Any) -> None:
        self.metrics.append(name)


@pytest.fixture
def client() -> Iterator[Any]:
    """A DynamoDB client of moto's with our table (keys, both indexes) created, nothing in it."""
    with mock_aws():
        dynamodb = _SESSION.client("dynamodb")
        dynamodb.create_table(TableName=TABLE, **_PROPERTIES)
        yield dynamodb


def raw_item(client: Any, pk: str, sk: str) -> dict[str, Any] | None:
    """The stored item as DynamoDB holds it (raw attribute values), or None."""
    item: dict[str, Any] | None = client.get_item(
        TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    ).get("Item")
    return item


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    seen = Recorder()
    monkeypatch.setattr(store_module, "logger", seen)
    monkeypatch.setattr(store_module, "metrics_count", seen.count)
    return seen


@pytest.fixture
def store(client: Any) -> WaveStore:
    return WaveStore(client, TABLE)


class AnswerLost:
    """A client whose writes commit but whose answers are lost: botocore sends the same request
    again (with the same ClientRequestToken, which moto, like DynamoDB after 10 minutes, does not
    honour), and the caller gets the answer to that re-send."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **request: Any) -> Any:
        self._client.update_item(**request)
        return self._client.update_item(**request)

    def transact_write_items(self, **request: Any) -> Any:
        self._client.transact_write_items(**request)
        return self._client.transact_write_items(**request)


class Recording:
    """A client that records each request and answers from a script (nothing is stored); more
    than 50 requests is a loop that does not end."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.answers = answers or {}

    def __getattr__(self, operation: str) -> Any:
        def call(**request: Any) -> Any:
            self.requests.append((operation, request))
            assert len(self.requests) <= 50, "a request loop that does not end"
            answer = self.answers.get(operation, {})
            if isinstance(answer, Exception):
                raise answer
            return answer

        return call


class Paged:
    """Forwards to moto, one item per page: DynamoDB may cut any Query into pages."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.queries = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def query(self, **request: Any) -> Any:
        self.queries += 1
        assert self.queries <= 50, "a paging loop that does not end"
        return self._client.query(**{**request, "Limit": 1})


def conditional_check_failed(item: dict[str, Any] | None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "failed"}}
    if item is not None:
        response["Item"] = item
    return ClientError(response, "UpdateItem")


def cancelled(*reasons: tuple[str | None, dict[str, Any] | None]) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
        "CancellationReasons": [
            {**({"Code": code} if code else {}), **({"Item": item} if item else {})} for code, item in reasons
        ],
    }
    return ClientError(response, "TransactWriteItems")


def stored_as(write_id: str, version: int) -> dict[str, Any]:
    return {"pk": {"S": "EXEC#e1"}, "writeId": {"S": write_id}, "version": {"N": str(version)}}


# -- the storage format ------------------------------------------------------------------------


def test_an_execution_is_one_partition_of_typed_items_with_our_keys(store: WaveStore, client: Any):
    execution, waves = plan(waves=2)
    stored_execution, stored_waves = store.create_execution(execution, waves)
    assert stored_execution.version == 1 and [w.version for w in stored_waves] == [1, 1]
    assert execution_pk("e1") == "EXEC#e1"
    assert wave_key("e1", 2) == WaveKey("EXEC#e1", "WAVE#0002")
    head = raw_item(client, "EXEC#e1", "EXEC")
    wave = raw_item(client, "EXEC#e1", "WAVE#0001")
    assert head is not None and wave is not None
    assert head["itemType"] == {"S": "EXECUTION"} and wave["itemType"] == {"S": "WAVE"}
    assert wave["waveNumber"] == {"N": "1"} and wave["executionId"] == {"S": "e1"}
    assert head["version"] == {"N": "1"} and wave["version"] == {"N": "1"}
    # one write id for the whole transaction, on every item it wrote
    assert head["writeId"] == wave["writeId"]
    uuid.UUID(head["writeId"]["S"])
    # What was stored is what is read back, waves in order.
    read = store.get_execution("e1")
    assert read == (stored_execution, stored_waves)


def test_an_execution_that_does_not_exist_reads_as_none(store: WaveStore):
    assert store.get_execution("missing") is None
    assert store.get_wave(wave_key("missing", 1)) is None
    assert store.find_waves_by_job("drsjob-missing") == []


def test_waves_read_back_in_wave_order_across_pages(client: Any):
    execution, waves = plan(waves=3, servers=1)
    WaveStore(client, TABLE).create_execution(execution, waves)
    paged = Paged(client)
    read = WaveStore(paged, TABLE).get_execution("e1")
    assert read is not None
    assert [w.wave_number for w in read[1]] == [1, 2, 3]
    assert read[0].execution_id == "e1"
    assert paged.queries >= 4  # one item per page: every page was followed


def test_answers_without_items_read_as_nothing():
    reader = WaveStore(Recording(), TABLE)  # every answer is {}
    assert reader.get_execution("e1") is None
    assert reader.find_waves_by_job("drsjob-1") == []
    assert list(reader.inflight_waves()) == []


def test_reads_are_strongly_consistent():
    recording = Recording({"query": {"Items": []}, "get_item": {}})
    reader = WaveStore(recording, TABLE)
    reader.get_execution("e1")
    reader.get_wave(wave_key("e1", 1))
    assert [(operation, request["ConsistentRead"]) for operation, request in recording.requests] == [
        ("query", True),
        ("get_item", True),
    ]
    assert recording.requests[0][1]["ExpressionAttributeValues"] == {":pk": {"S": "EXEC#e1"}}
    assert recording.requests[1][1]["Key"] == {"pk": {"S": "EXEC#e1"}, "sk": {"S": "WAVE#0001"}}


def test_numbers_read_back_as_int_or_float_at_any_depth():
    assert from_attrs(
        {
            "count": {"N": "3"},
            "ratio": {"N": "0.5"},
            "nested": {"M": {"n": {"N": "2"}, "list": {"L": [{"N": "1"}, {"N": "1.5"}]}}},
            "tags": {"SS": ["a"]},
            "name": {"S": "x"},
        }
    ) == {"count": 3, "ratio": 0.5, "nested": {"n": 2, "list": [1, 1.5]}, "tags": ["a"], "name": "x"}
    plain = from_attrs({"n": {"N": "7"}, "f": {"N": "2.25"}})
    assert type(plain["n"]) is int and type(plain["f"]) is float


def test_an_event_in_the_outbox_round_trips_with_its_numbers(store: WaveStore):
    execution, waves = plan(waves=1)
    _, stored = store.create_execution(execution, waves)
    event = OutboxEvent(
        event_id="ev-1", detail_type="Probe", detail={"n": 2, "counts": {"servers": 3}, "list": [1, 2]}
    )
    store.write_wave(stored[0].model_copy(update={"outbox": (event,)}), updated_at=LATER)
    read = store.get_wave(wave_key("e1", 1))
    assert read is not None and read.outbox == (event,)
    assert type(read.outbox[0].detail["n"]) is int  # not Decimal: the detail is published as JSON


# -- the version rule --------------------------------------------------------------------------


def test_an_execution_is_created_once(store: WaveStore):
    execution, waves = plan()
    store.create_execution(execution, waves)
    with pytest.raises(VersionConflict):
        store.create_execution(execution, waves)


def test_creating_is_all_or_nothing(store: WaveStore, client: Any):
    # Given wave 2 of another execution's id already exists
    execution, waves = plan(waves=2)
    store.create_execution(*plan(execution_id="other", waves=1))
    clash = waves[1].model_copy(update={"execution_id": "other", "wave_number": 1})
    # When an execution is created with it among its waves, nothing of it is written
    with pytest.raises(VersionConflict):
        store.create_execution(execution, [waves[0], clash])
    assert raw_item(client, "EXEC#e1", "EXEC") is None
    assert raw_item(client, "EXEC#e1", "WAVE#0001") is None


def test_each_write_stores_the_next_version_under_a_fresh_write_id(store: WaveStore, client: Any):
    execution, waves = plan(waves=1)
    _, (wave,) = store.create_execution(execution, waves)
    first = raw_item(client, "EXEC#e1", "WAVE#0001")
    written = store.write_wave(wave.model_copy(update={"name": "renamed"}), updated_at=LATER)
    assert written.version == 2 and written.updated_at == LATER and written.name == "renamed"
    second = raw_item(client, "EXEC#e1", "WAVE#0001")
    assert second is not None and first is not None
    assert second["version"] == {"N": "2"} and second["updatedAt"] == {"S": LATER}
    assert second["name"] == {"S": "renamed"}
    assert second["writeId"] != first["writeId"]
    again = store.write_wave(written, updated_at=LATEST)
    assert again.version == 3
    assert store.get_wave(wave_key("e1", 1)) == again


def test_a_stale_write_is_a_version_conflict_carrying_the_stored_item(store: WaveStore, client: Any):
    execution, waves = plan(waves=1)
    _, (wave,) = store.create_execution(execution, waves)
    store.write_wave(wave.model_copy(update={"name": "first"}), updated_at=LATER)
    with pytest.raises(VersionConflict) as raised:
        store.write_wave(wave.model_copy(update={"name": "second"}), updated_at=LATEST)
    assert raised.value.expected_version == 1
    assert raised.value.current == raw_item(client, "EXEC#e1", "WAVE#0001")
    assert from_attrs(raised.value.current or {})["name"] == "first"
    stored = store.get_wave(wave_key("e1", 1))
    assert stored is not None and stored.name == "first" and stored.version == 2


def test_of_two_writers_from_the_same_read_exactly_one_wins(client: Any):
    execution, waves = plan(waves=1)
    _, (wave,) = WaveStore(client, TABLE).create_execution(execution, waves)
    first, second = WaveStore(client, TABLE), WaveStore(client, TABLE)
    first.write_wave(wave.model_copy(update={"name": "first"}), updated_at=LATER)
    with pytest.raises(VersionConflict):
        second.write_wave(wave.model_copy(update={"name": "second"}), updated_at=LATER)
    stored = first.get_wave(wave_key("e1", 1))
    assert stored is not None and stored.name == "first"


def test_the_execution_item_follows_the_same_rule(store: WaveStore, client: Any):
    execution, waves = plan(waves=1)
    stored, _ = store.create_execution(execution, waves)
    paused = store.write_execution(stored.model_copy(update={"paused_before": 1}), updated_at=LATER)
    assert paused.version == 2 and paused.updated_at == LATER
    head = raw_item(client, "EXEC#e1", "EXEC")
    assert head is not None and head["pausedBefore"] == {"N": "1"} and head["version"] == {"N": "2"}
    with pytest.raises(VersionConflict) as raised:
        store.write_execution(stored.model_copy(update={"name": "stale"}), updated_at=LATEST)
    assert raised.value.expected_version == 1
    resumed = store.write_execution(paused.model_copy(update={"paused_before": None}), updated_at=LATEST)
    head = raw_item(client, "EXEC#e1", "EXEC")
    assert head is not None and "pausedBefore" not in head  # a field set to None is removed
    read = store.get_execution("e1")
    assert read is not None and read[0] == resumed


def test_a_field_that_became_none_is_removed_from_the_item(store: WaveStore, client: Any):
    execution, waves = plan(waves=1)
    _, (wave,) = store.create_execution(execution, waves)
    deferred = store.write_wave(
        wave.model_copy(update={"start_retry_at": LATER, "start_problem": "ThrottlingException: slow"}),
        updated_at=LATER,
    )
    item = raw_item(client, "EXEC#e1", "WAVE#0001")
    assert item is not None and item["startRetryAt"] == {"S": LATER}
    store.write_wave(
        deferred.model_copy(update={"start_retry_at": None, "start_problem": None}), updated_at=LATEST
    )
    item = raw_item(client, "EXEC#e1", "WAVE#0001")
    assert item is not None
    assert "startRetryAt" not in item and "startProblem" not in item
    assert item["name"] == {"S": "wave 1"} and "servers" in item


def test_a_wave_turning_terminal_carries_its_event_in_the_same_write(store: WaveStore):
    execution, waves = plan(waves=1)
    _, (wave,) = store.create_execution(execution, waves)
    failed = store.write_wave(
        wave.model_copy(update={"status": WaveStatus.FAILED, "error": "refused", "end_time": LATER}),
        updated_at=LATER,
    )
    assert [event.detail_type for event in failed.outbox] == [WAVE_COMPLETED]
    stored = store.get_wave(wave_key("e1", 1))
    assert stored is not None and stored.outbox == failed.outbox


# -- the TTL write -----------------------------------------------------------------------------


def test_an_expiry_is_written_under_the_version_rule_and_touches_nothing_else(store: WaveStore, client: Any):
    execution, waves = plan(waves=1)
    _, (wave,) = store.create_execution(execution, waves)
    wave = store.write_wave(wave.model_copy(update={"start_requested_at": CREATED}), updated_at=CREATED)
    before = raw_item(client, "EXEC#e1", "WAVE#0001")
    assert before is not None and "inflight" in before  # on the worklist: the expiry keeps it there
    # the wave passed in differs from the stored one in its name: only the expiry is written
    expiring = store.write_expiry(
        wave.model_copy(update={"name": "not written"}), 1_900_000_000, updated_at=LATER
    )
    assert expiring.expires_at == 1_900_000_000 and expiring.version == 3 and expiring.updated_at == LATER
    after = raw_item(client, "EXEC#e1", "WAVE#0001")
    assert before is not None and after is not None
    assert after["expiresAt"] == {"N": "1900000000"}
    assert after["version"] == {"N": "3"} and after["updatedAt"] == {"S": LATER}
    assert after["writeId"] != before["writeId"]
    unchanged = {k: v for k, v in after.items() if k not in ("expiresAt", "version", "updatedAt", "writeId")}
    assert unchanged == {k: v for k, v in before.items() if k not in ("version", "updatedAt", "writeId")}
    with pytest.raises(VersionConflict) as raised:
        store.write_expiry(wave, 1_900_000_001, updated_at=LATEST)
    assert raised.value.expected_version == 2


def test_an_expiry_whose_answer_was_lost_is_the_success_it_was(client: Any, recorder: Recorder):
    execution, waves = plan(waves=1)
    _, (wave,) = WaveStore(client, TABLE).create_execution(execution, waves)
    written = WaveStore(AnswerLost(client), TABLE).write_expiry(wave, 1_900_000_000, updated_at=LATER)
    assert written.version == 2
    assert recorder.metrics == ["LostAnswerRecovered"]


# -- transactions ------------------------------------------------------------------------------


def test_waves_written_together_all_land_or_none_does(store: WaveStore, client: Any):
    execution, waves = plan(waves=2)
    head, (one, two) = store.create_execution(execution, waves)
    written_head, written = store.write_together(
        head.model_copy(update={"paused_before": 2}),
        [one.model_copy(update={"name": "one"}), two.model_copy(update={"name": "two"})],
        updated_at=LATER,
    )
    assert written_head is not None and written_head.version == 2 and written_head.paused_before == 2
    assert [(w.name, w.version, w.updated_at) for w in written] == [("one", 2, LATER), ("two", 2, LATER)]
    items = [raw_item(client, "EXEC#e1", sk) for sk in ("EXEC", "WAVE#0001", "WAVE#0002")]
    assert all(item is not None for item in items)
    assert len({item["writeId"]["S"] for item in items if item}) == 1  # one write, one write id
    assert store.get_execution("e1") == (written_head, written)
    # a stale wave among them: nothing is written
    with pytest.raises(VersionConflict):
        store.write_together(
            written_head.model_copy(update={"paused_before": None}),
            [written[0].model_copy(update={"name": "again"}), two],
            updated_at=LATEST,
        )
    assert store.get_execution("e1") == (written_head, written)


def test_waves_alone_can_be_written_together(store: WaveStore):
    execution, waves = plan(waves=2)
    head, stored = store.create_execution(execution, waves)
    written = store.write_waves(
        [w.model_copy(update={"name": f"x{w.wave_number}"}) for w in stored], updated_at=LATER
    )
    assert [(w.name, w.version) for w in written] == [("x1", 2), ("x2", 2)]
    read = store.get_execution("e1")
    assert read is not None and read[0] == head and read[1] == written
    stale = stored[0].model_copy(update={"name": "stale"})
    with pytest.raises(VersionConflict):
        store.write_waves([stale], updated_at=LATEST)


def test_nothing_to_write_sends_nothing():
    recording = Recording()
    assert WaveStore(recording, TABLE).write_together(None, [], updated_at=LATER) == (None, [])
    assert recording.requests == []


def test_a_transaction_names_its_token_and_asks_for_the_old_items():
    recording = Recording()
    execution, waves = plan(waves=1)
    writer = WaveStore(recording, TABLE)
    writer.create_execution(execution, waves)
    writer.write_together(execution.model_copy(update={"version": 1}), [], updated_at=LATER)
    tokens = [request["ClientRequestToken"] for _, request in recording.requests]
    assert len(tokens) == 2 and len(set(tokens)) == 2
    for token in tokens:
        uuid.UUID(token)
    for _, request in recording.requests:
        for action in request["TransactItems"]:
            (body,) = action.values()
            assert body["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
            assert body["TableName"] == TABLE


def test_a_transaction_whose_answer_was_lost_is_the_success_it_was(client: Any, recorder: Recorder):
    execution, waves = plan(waves=2)
    lossy = WaveStore(AnswerLost(client), TABLE)
    head, stored = lossy.create_execution(execution, waves)
    assert recorder.metrics == ["LostAnswerRecovered"]
    (recovered,) = [entry for entry in recorder.logs if entry[1] == "write landed; its answer was lost"]
    (sent,) = [entry for entry in recorder.logs if entry[1] == "transaction sent"]
    assert recovered[2] == {"operation": "TransactWriteItems", **sent[2]}
    # the execution and the waves at different versions: each failed action is matched to its own
    plain = WaveStore(client, TABLE)
    head = plain.write_execution(head.model_copy(update={"name": "drill 2"}), updated_at=LATER)
    second = plain.write_wave(stored[1].model_copy(update={"name": "b"}), updated_at=LATER)
    written_head, written = lossy.write_together(
        head.model_copy(update={"paused_before": 2}),
        [stored[0].model_copy(update={"name": "a"}), second.model_copy(update={"name": "c"})],
        updated_at=LATEST,
    )
    assert recorder.metrics == ["LostAnswerRecovered"] * 2
    assert written_head is not None and written_head.version == 3
    assert [w.version for w in written] == [2, 3]
    assert WaveStore(client, TABLE).get_execution("e1") == (written_head, written)


def test_a_transaction_cancelled_by_another_writer_is_a_version_conflict(client: Any, recorder: Recorder):
    execution, waves = plan(waves=2)
    head, stored = WaveStore(client, TABLE).create_execution(execution, waves)
    WaveStore(client, TABLE).write_wave(stored[1].model_copy(update={"name": "theirs"}), updated_at=LATER)
    with pytest.raises(VersionConflict):
        WaveStore(AnswerLost(client), TABLE).write_together(
            head, [stored[0], stored[1].model_copy(update={"name": "ours"})], updated_at=LATEST
        )
    assert recorder.metrics == []
    read = WaveStore(client, TABLE).get_execution("e1")
    assert read is not None and [w.name for w in read[1]] == ["wave 1", "theirs"]


@pytest.mark.parametrize(
    ("reasons", "outcome"),
    [
        # every failed action carries our write id and the version we wrote: our own success
        ((("None", None), ("ConditionalCheckFailed", "ours")), None),
        (((None, None), ("ConditionalCheckFailed", "ours")), None),  # a reason with no code at all
        ((("ConditionalCheckFailed", "ours"), ("ConditionalCheckFailed", "ours")), None),
        # one failed action is someone else's write, or ours at another version, or unexplained
        ((("ConditionalCheckFailed", "ours"), ("ConditionalCheckFailed", "theirs")), VersionConflict),
        ((("ConditionalCheckFailed", "ours"), ("ConditionalCheckFailed", "ours, older")), VersionConflict),
        ((("ConditionalCheckFailed", "ours"), ("ConditionalCheckFailed", None)), VersionConflict),
        ((("ConditionalCheckFailed", "ours"), ("TransactionConflict", "ours")), VersionConflict),
        # nothing failed a condition: not ours, and classified as usual
        ((("None", None), ("None", None)), TemporaryError),
        ((("TransactionConflict", "ours"), ("None", None)), TemporaryError),
    ],
)
def test_a_cancellation_is_our_success_only_when_our_write_explains_every_failure(
    monkeypatch: pytest.MonkeyPatch,
    recorder: Recorder,
    reasons: tuple[tuple[str | None, str | None], ...],
    outcome: type[Exception] | None,
):
    write_id = "11111111-2222-3333-4444-555555555555"
    monkeypatch.setattr(store_module, "new_write_id", lambda: write_id)
    items = {
        "ours": stored_as(write_id, 2),
        "ours, older": stored_as(write_id, 1),
        "theirs": stored_as("x", 2),
        None: None,
    }
    error = cancelled(*((code, items[item]) for code, item in reasons))
    execution, waves = plan(waves=1)
    writer = WaveStore(Recording({"transact_write_items": error}), TABLE)
    written = (execution.model_copy(update={"version": 1}), [waves[0].model_copy(update={"version": 1})])
    if outcome is None:
        head, stored = writer.write_together(*written, updated_at=LATER)
        assert head is not None and head.version == 2 and [w.version for w in stored] == [2]
        assert recorder.metrics == ["LostAnswerRecovered"]
    else:
        with pytest.raises(outcome):
            writer.write_together(*written, updated_at=LATER)
        assert recorder.metrics == []


def test_a_cancellation_for_another_reason_is_classified_as_usual():
    throttled = WaveStore(Recording({"transact_write_items": cancelled(("ThrottlingError", None))}), TABLE)
    with pytest.raises(TemporaryError) as temporary:
        throttled.create_execution(*plan())
    assert str(temporary.value).startswith(
        "TransactWriteItems: TransactionCanceledException ['ThrottlingError']: "
    )
    invalid = WaveStore(Recording({"transact_write_items": cancelled(("ValidationError", None))}), TABLE)
    with pytest.raises(PermanentError) as permanent:
        invalid.create_execution(*plan())
    assert str(permanent.value).startswith("TransactWriteItems: TransactionCanceledException: ")


# -- the write-id rule on single writes --------------------------------------------------------


def test_a_write_whose_answer_was_lost_is_the_success_it_was(client: Any, recorder: Recorder):
    execution, waves = plan(waves=1)
    _, (wave,) = WaveStore(client, TABLE).create_execution(execution, waves)
    written = WaveStore(AnswerLost(client), TABLE).write_wave(
        wave.model_copy(update={"name": "x"}), updated_at=LATER
    )
    assert written.version == 2 and written.name == "x"
    assert recorder.metrics == ["LostAnswerRecovered"]
    item = raw_item(client, "EXEC#e1", "WAVE#0001")
    assert item is not None
    (recovered,) = [entry for entry in recorder.logs if entry[1] == "write landed; its answer was lost"]
    assert recovered[2] == {
        "operation": "UpdateItem",
        "pk": "EXEC#e1",
        "sk": "WAVE#0001",
        "writeId": item["writeId"]["S"],
        "version": 2,
    }


def test_an_execution_write_whose_answer_was_lost_is_the_success_it_was(client: Any, recorder: Recorder):
    execution, waves = plan(waves=1)
    head, _ = WaveStore(client, TABLE).create_execution(execution, waves)
    written = WaveStore(AnswerLost(client), TABLE).write_execution(
        head.model_copy(update={"paused_before": 1}), updated_at=LATER
    )
    assert written.version == 2
    assert recorder.metrics == ["LostAnswerRecovered"]


@pytest.mark.parametrize("stored", ["theirs", "ours, older", "nothing returned", "no write id", "no version"])
def test_a_failed_condition_not_explained_by_our_write_is_a_version_conflict(
    monkeypatch: pytest.MonkeyPatch, recorder: Recorder, stored: str
):
    write_id = "11111111-2222-3333-4444-555555555555"
    monkeypatch.setattr(store_module, "new_write_id", lambda: write_id)
    item = {
        "theirs": stored_as("x", 2),
        "ours, older": stored_as(write_id, 1),
        "nothing returned": None,
        # an item of a writer from before write ids (tests/legacy_writer.py), or with no version
        "no write id": {"pk": {"S": "EXEC#e1"}, "version": {"N": "2"}},
        "no version": {"pk": {"S": "EXEC#e1"}, "writeId": {"S": write_id}},
    }[stored]
    _, waves = plan(waves=1)
    writer = WaveStore(Recording({"update_item": conditional_check_failed(item)}), TABLE)
    with pytest.raises(VersionConflict) as raised:
        writer.write_wave(waves[0].model_copy(update={"version": 1}), updated_at=LATER)
    assert raised.value.current == item and raised.value.expected_version == 1
    assert recorder.metrics == []


def test_our_write_met_again_at_its_version_is_success(monkeypatch: pytest.MonkeyPatch, recorder: Recorder):
    write_id = "11111111-2222-3333-4444-555555555555"
    monkeypatch.setattr(store_module, "new_write_id", lambda: write_id)
    _, waves = plan(waves=1)
    recording = Recording({"update_item": conditional_check_failed(stored_as(write_id, 2))})
    written = WaveStore(recording, TABLE).write_wave(
        waves[0].model_copy(update={"version": 1}), updated_at=LATER
    )
    assert written.version == 2
    assert recorder.metrics == ["LostAnswerRecovered"]
    (_, request) = recording.requests[0]
    assert request["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert request["ExpressionAttributeValues"][":writeId"] == {"S": write_id}
    assert request["ExpressionAttributeValues"][":expected"] == {"N": "1"}


def test_other_failures_of_a_single_write_are_classified_with_its_operation():
    _, waves = plan(waves=1)
    answer = {"Error": {"Code": "ValidationException", "Message": "bad"}}
    refused = ClientError(answer, "UpdateItem")
    with pytest.raises(PermanentError) as raised:
        WaveStore(Recording({"update_item": refused}), TABLE).write_wave(waves[0], updated_at=LATER)
    assert str(raised.value) == f"UpdateItem: ValidationException: {refused}"


@pytest.mark.parametrize("operation", ["update_item", "transact_write_items"])
def test_a_write_that_got_no_answer_at_all_is_temporary(operation: str):
    timeout = ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")
    execution, waves = plan(waves=1)
    writer = WaveStore(Recording({operation: timeout}), TABLE)
    with pytest.raises(TemporaryError) as raised:
        if operation == "update_item":
            writer.write_wave(waves[0], updated_at=LATER)
        else:
            writer.create_execution(execution, waves)
    name = "UpdateItem" if operation == "update_item" else "TransactWriteItems"
    assert str(raised.value) == f"{name}: ReadTimeoutError: {timeout}"


def test_a_read_that_fails_is_classified_with_its_operation():
    busy = ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "slow"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "Query",
    )
    reader = WaveStore(Recording({"query": busy, "get_item": busy}), TABLE)
    with pytest.raises(TemporaryError) as raised:
        reader.get_execution("e1")
    assert str(raised.value) == f"query: ThrottlingException: {busy}"
    with pytest.raises(TemporaryError) as raised:
        reader.get_wave(wave_key("e1", 1))
    assert str(raised.value) == f"get_item: ThrottlingException: {busy}"


def test_a_transaction_logs_what_it_sent(store: WaveStore, recorder: Recorder):
    execution, waves = plan(waves=2)
    head, stored = store.create_execution(execution, waves)
    store.write_waves(stored, updated_at=LATER)
    store.write_together(head, [], updated_at=LATER)
    sent = [entry for entry in recorder.logs if entry[1] == "transaction sent"]
    assert [(level, extra["what"], extra["items"]) for level, _, extra in sent] == [
        ("info", "create execution", 3),
        ("info", "write together", 2),
        ("info", "write together", 1),
    ]
    for _, _, extra in sent:
        uuid.UUID(extra["clientRequestToken"])
        uuid.UUID(extra["writeId"])
        assert extra["clientRequestToken"] != extra["writeId"]


# -- the indexes ---------------------------------------------------------------------------------


def test_a_wave_is_found_by_its_job(store: WaveStore):
    execution, waves = plan(waves=2)
    _, stored = store.create_execution(execution, waves)
    store.write_wave(
        stored[1].model_copy(update={"job_id": "drsjob-2", "status": WaveStatus.LAUNCHING}), updated_at=LATER
    )
    assert store.find_waves_by_job("drsjob-2") == [wave_key("e1", 2)]
    assert store.find_waves_by_job("drsjob-1") == []


def test_the_worklist_holds_what_is_under_way_in_every_shard(client: Any):
    # Given executions in every state a worklist must tell apart
    store = WaveStore(client, TABLE)
    keys: dict[str, WaveKey] = {}
    for n in range(6):
        execution, (wave,) = store.create_execution(*plan(execution_id=f"e{n}", waves=1))
        keys[f"e{n}"] = wave_key(f"e{n}", 1)
        if n == 0:  # a claimed start
            store.write_wave(wave.model_copy(update={"start_requested_at": LATER}), updated_at=LATER)
        elif n == 1:  # a job under way
            store.write_wave(
                wave.model_copy(update={"job_id": "j1", "status": WaveStatus.LAUNCHING}), updated_at=LATER
            )
        elif n == 2:  # a job that ended: its event still to publish
            store.write_wave(
                wave.model_copy(update={"job_id": "j2", "status": WaveStatus.COMPLETED}), updated_at=LATER
            )
        elif n == 3:  # a job that ended and was announced
            done = wave.model_copy(update={"job_id": "j3", "status": WaveStatus.COMPLETED, "announced": True})
            store.write_wave(done, updated_at=LATER)
        if n >= 3:  # a finished execution, announced
            store.write_execution(
                execution.model_copy(
                    update={"status": ExecutionStatus.COMPLETED, "end_time": LATER, "announced": True}
                ),
                updated_at=LATER,
            )
    # When the worklist is read (one item per page), from any shard
    expected = {
        keys["e0"],
        keys["e1"],
        keys["e2"],
        WaveKey("EXEC#e0", "EXEC"),
        WaveKey("EXEC#e1", "EXEC"),
        WaveKey("EXEC#e2", "EXEC"),
    }
    assert sorted(store.inflight_waves(), key=str) == sorted(expected, key=str)
    paged = WaveStore(client, TABLE, page_size=1)
    for first in range(INFLIGHT_SHARDS):
        listed = list(paged.inflight_waves(first))
        # Then it holds each item under way exactly once, and nothing finished
        assert sorted(listed, key=str) == sorted(expected, key=str)
    # And the items spread over the shards; each shard's items come together, from the first asked
    items = {key: raw_item(client, key.pk, key.sk) or {} for key in expected}
    shards = {key: item["inflight"]["S"] for key, item in items.items()}
    assert set(shards.values()) <= {f"S{i}" for i in range(INFLIGHT_SHARDS)}
    assert len(set(shards.values())) > 1
    for first in range(INFLIGHT_SHARDS):
        order = [shards[key] for key in paged.inflight_waves(first)]
        runs = [shard for i, shard in enumerate(order) if i == 0 or order[i - 1] != shard]
        assert len(runs) == len(set(runs))
        wanted = [f"S{(first + i) % INFLIGHT_SHARDS}" for i in range(INFLIGHT_SHARDS)]
        assert runs == [shard for shard in wanted if shard in runs]


def test_the_worklist_is_read_page_by_page():
    class TwoPages(Recording):
        """Shard S2 holds two pages; every other shard is empty."""

        def query(self, **request: Any) -> Any:
            self.requests.append(("query", dict(request)))
            assert len(self.requests) <= 50, "a paging loop that does not end"
            if request["ExpressionAttributeValues"] != {":shard": {"S": "S2"}}:
                return {"Items": []}
            if "ExclusiveStartKey" not in request:
                return {
                    "Items": [{"pk": {"S": "EXEC#a"}, "sk": {"S": "WAVE#0001"}}],
                    "LastEvaluatedKey": {"k": {"S": "1"}},
                }
            return {"Items": [{"pk": {"S": "EXEC#b"}, "sk": {"S": "WAVE#0002"}}]}

    recording = TwoPages()
    listed = list(WaveStore(recording, TABLE, page_size=25).inflight_waves(2))
    assert listed == [WaveKey("EXEC#a", "WAVE#0001"), WaveKey("EXEC#b", "WAVE#0002")]
    first, second = recording.requests[0][1], recording.requests[1][1]
    assert first["Limit"] == 25 and first["IndexName"] == "inflight" and first["TableName"] == TABLE
    assert first["ExpressionAttributeValues"] == {":shard": {"S": "S2"}}
    assert second["ExclusiveStartKey"] == {"k": {"S": "1"}}
    assert len(recording.requests) == 1 + INFLIGHT_SHARDS  # S2 twice, then S3, S0, S1 once each
    unpaged = TwoPages()
    list(WaveStore(unpaged, TABLE).inflight_waves())
    shards = [request["ExpressionAttributeValues"][":shard"]["S"] for _, request in unpaged.requests]
    assert shards == ["S0", "S1", "S2", "S2", "S3"]  # from shard 0 unless told otherwise
    assert all("Limit" not in request for _, request in unpaged.requests)  # DynamoDB's own page size


# -- the size guards -----------------------------------------------------------------------------


def test_an_item_over_the_guard_is_refused_before_any_request_and_one_at_it_is_sent():
    _, (wave,) = plan(waves=1, servers=1)
    recording = Recording()
    writer = WaveStore(recording, TABLE)
    written = wave.model_copy(update={"version": 1, "updated_at": LATER})
    # grow a hostname until the stored item is exactly at the guard, as the store measures it
    missing = ITEM_GUARD_BYTES - writer.wave_item_bytes(written)
    server = wave.servers[0]
    at_guard = wave.model_copy(
        update={"servers": (server.model_copy(update={"hostname": (server.hostname or "") + "h" * missing}),)}
    )
    assert (
        writer.wave_item_bytes(at_guard.model_copy(update={"version": 1, "updated_at": LATER}))
        == ITEM_GUARD_BYTES
    )
    writer.write_wave(at_guard, updated_at=LATER)
    assert len(recording.requests) == 1
    over = at_guard.model_copy(
        update={
            "servers": (
                server.model_copy(update={"hostname": (server.hostname or "") + "h" * (missing + 1)}),
            )
        }
    )
    with pytest.raises(TooLarge) as raised:
        writer.write_wave(over, updated_at=LATER)
    assert len(recording.requests) == 1
    assert "EXEC#e1/WAVE#0001" in str(raised.value) and str(ITEM_GUARD_BYTES + 1) in str(raised.value)


def test_the_size_estimate_counts_names_and_values():
    _, (wave,) = plan(waves=1, servers=1)
    writer = WaveStore(Recording(), TABLE)
    longer = wave.model_copy(update={"name": wave.name + "x" * 10})
    assert writer.wave_item_bytes(longer) - writer.wave_item_bytes(wave) == 10
    with_error = wave.model_copy(update={"error": "e"})
    # a new attribute adds its name (5 bytes) and its JSON value ('"e"', 3 bytes)
    assert writer.wave_item_bytes(with_error) - writer.wave_item_bytes(wave) == len("error") + 3


def test_a_transaction_over_its_guard_is_refused_before_any_request_and_one_at_it_is_sent():
    execution, waves = plan(waves=12, servers=1)
    recording = Recording()
    writer = WaveStore(recording, TABLE)

    def with_hostname(wave: WaveRecord, length: int) -> WaveRecord:
        return wave.model_copy(
            update={"servers": (wave.servers[0].model_copy(update={"hostname": "h" * length}),)}
        )

    big = [with_hostname(w, 300_000) for w in waves[:11]]
    # the items as the transaction writes them (version 1), measured as the store measures them
    measured = estimate_item_bytes(writer._execution_item(execution.model_copy(update={"version": 1})))
    measured += sum(writer.wave_item_bytes(w.model_copy(update={"version": 1})) for w in big)
    last = with_hostname(waves[11], 1)
    room = TRANSACTION_GUARD_BYTES - measured - writer.wave_item_bytes(last.model_copy(update={"version": 1}))
    at_guard = with_hostname(waves[11], 1 + room)
    writer.create_execution(execution, [*big, at_guard])
    assert len(recording.requests) == 1
    with pytest.raises(TooLarge) as raised:
        writer.create_execution(execution, [*big, with_hostname(waves[11], 2 + room)])
    assert str(raised.value) == f"the execution's items exceed {TRANSACTION_GUARD_BYTES} bytes"
    assert len(recording.requests) == 1


def test_the_start_protocol_s_memory_store_answers_as_this_store_does(store: WaveStore):
    """tests/unit/test_start_protocol.py runs the protocol on `MemoryStore`: it must answer every
    read, write and lost race as the store does on DynamoDB."""
    execution, waves = plan(waves=1)
    store.create_execution(execution, waves)
    memory = MemoryStore(waves)
    key = wave_key("e1", 1)
    outcomes: list[list[Any]] = []
    for backend in (store, memory):
        seen: list[Any] = [backend.get_wave(key)]
        read = backend.get_wave(key)
        assert read is not None
        claimed = backend.write_wave(read.model_copy(update={"start_requested_at": LATER}), updated_at=LATER)
        seen.append(claimed)
        for stale in (read, claimed.model_copy(update={"version": 7})):
            with pytest.raises(VersionConflict) as raised:
                backend.write_wave(stale.model_copy(update={"name": "stale"}), updated_at=LATEST)
            current = raised.value.current
            seen.append((raised.value.expected_version, current and from_attrs(current)["version"]))
            seen.append(current and store_module.wave_from_item(current))
        failed = claimed.model_copy(update={"status": WaveStatus.FAILED, "end_time": LATEST, "error": "x"})
        seen.append(backend.write_wave(failed, updated_at=LATEST))  # with its Wave Completed event
        seen.append(backend.get_wave(key))
        gone = claimed.model_copy(update={"wave_number": 2})
        with pytest.raises(VersionConflict) as raised:
            backend.write_wave(gone, updated_at=LATEST)
        seen.append((raised.value.expected_version, raised.value.current))
        outcomes.append(seen)
    assert outcomes[0] == outcomes[1]
