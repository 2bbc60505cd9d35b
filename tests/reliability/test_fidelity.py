"""The same single-item conditional-write races on two DynamoDB implementations: moto and dynalite.

Every race test of this project runs on moto, and moto is only atomic per request because the
project serialises it with a global lock (local/moto_lock.py). That proves our code right only if
moto-with-a-lock behaves like DynamoDB. This module checks the fake itself: the store's real
versioned write (`WaveStore.write_wave`) and its conditional create race on moto and on dynalite,
an independent implementation with its own atomic conditional writes, and both must give the
same, correct outcomes: exactly one winner per round, no lost increment, one creator. The
recorder of test_history watches every race too, and its checker must find nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from local import moto_lock
from local.serverless import table_properties
from local.waiting import wait_until
from reconciler.errors import VersionConflict, client_error_code
from reconciler.store import WaveStore, _to_attrs, _version_guard, from_attrs, wave_key
from schemas.records import ServerRecord, WaveRecord
from tests.reliability.figures import record
from tests.reliability.history import Recorder, check, wave_items

BACKENDS = ("moto", "dynalite")
THREADS = 8
ROUNDS = 30  # race (a): every thread writes v+1 from the same v, ROUNDS times
INCREMENTS = 10  # race (b): per thread
CREATES = 20  # race (c): rounds of every thread creating the same new item
# The same client settings as production (reconciler/clients.py): standard retries, 4 attempts.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, max_pool_connections=32)


def _client(endpoint_url: str | None) -> Any:
    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=CLIENT_CONFIG,
    )


@contextmanager
def _backend(name: str, dynalite_url: str | None) -> Iterator[Any]:
    """A client of an empty DynamoDB: moto in-process, atomic per request with the project's
    global lock (as LocalStack installs it), or the dynalite server."""
    if name == "moto":
        moto_lock.install()
        with mock_aws():
            yield _client(None)
    else:
        yield _client(dynalite_url)


def _table(client: Any) -> str:
    """Our table as serverless.yml declares it (dynalite wants names of 3 characters or more)."""
    name = f"fidelity-{uuid.uuid4().hex[:8]}"
    client.create_table(TableName=name, **table_properties())
    wait_until(  # at once on both (dynalite runs with --createTableMs 0): a hang guard
        lambda: client.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE",
        what=f"table {name} to become ACTIVE",
        interval=0.02,
    )
    return name


def _wave(execution_id: str, marker: str = "initial") -> WaveRecord:
    return WaveRecord(
        execution_id=execution_id,
        wave_number=1,
        name=marker,
        is_drill=True,
        servers=(ServerRecord(source_server_id="s-0000000000000001", hostname="web-1"),),
        version=0,
        created_at="2025-01-01T00:00:00Z",
        updated_at="2025-01-01T00:00:00Z",
    )


def _create(store: WaveStore, client: Any, wave: WaveRecord) -> bool:
    """The single-item conditional create under the store's own version rule (no stored version:
    the item must not exist; it is written as version 1). WaveStore only creates inside a
    transaction (create_execution), which dynalite does not implement, so the one PutItem is here."""
    condition, names, values, version = _version_guard(None)
    request: dict[str, Any] = {
        "TableName": store._table,
        "Item": _to_attrs(store._wave_item(wave.model_copy(update={"version": version}))),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
    }
    if values:
        request["ExpressionAttributeValues"] = values
    try:
        client.put_item(**request)
    except ClientError as error:
        if client_error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _in_threads(work: Callable[[int], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="racer") as pool:
        return list(pool.map(work, range(THREADS)))


def race_one_winner(store: WaveStore, client: Any) -> dict[str, Any]:
    """(a) All threads read version v, then all write v+1 (a barrier in between): one winner."""
    execution_id = f"one-winner-{uuid.uuid4().hex[:8]}"
    key = wave_key(execution_id, 1)
    assert _create(store, client, _wave(execution_id))
    winners: dict[int, list[int]] = {r: [] for r in range(ROUNDS)}
    stored: dict[int, tuple[int, str]] = {}
    conflicts = Counter[str]()
    lock = threading.Lock()
    current_round = [0]

    def look() -> None:  # after each round, with every thread waiting: what is stored now
        wave = store.get_wave(key)
        assert wave is not None
        stored[current_round[0]] = (wave.version, wave.name)
        current_round[0] += 1

    read, written = (
        threading.Barrier(THREADS, timeout=60),
        threading.Barrier(THREADS, action=look, timeout=60),
    )

    def racer(thread: int) -> None:
        for round_ in range(ROUNDS):
            wave = store.get_wave(key)
            assert wave is not None
            read.wait()
            mine = wave.model_copy(update={"name": f"t{thread}-r{round_}"})
            try:
                store.write_wave(mine, updated_at="2025-01-01T00:00:01Z")
                with lock:
                    winners[round_].append(thread)
            except VersionConflict as conflict:
                with lock:
                    conflicts["with_item" if conflict.current else "without_item"] += 1
            written.wait()

    _in_threads(racer)
    ok = [r for r in range(ROUNDS) if len(winners[r]) == 1]
    return {
        "rounds": ROUNDS,
        "winners_per_round": dict(Counter(len(w) for w in winners.values())),
        "rounds_ok": len(ok),
        "conflicts": sum(conflicts.values()),
        "stored_is_the_winners": sum(stored[r] == (r + 2, f"t{winners[r][0]}-r{r}") for r in ok),
        "final_version": stored[ROUNDS - 1][0],
        # Not compared: moto returns the item with a failed condition (ALL_OLD), dynalite does not
        "_conflicts_with_old_item": conflicts["with_item"],
    }


def race_counter(store: WaveStore, client: Any) -> dict[str, Any]:
    """(b) Optimistic counter: read, add one, versioned write, retry on conflict."""
    execution_id = f"counter-{uuid.uuid4().hex[:8]}"
    key = wave_key(execution_id, 1)
    assert _create(store, client, _wave(execution_id))
    start = threading.Barrier(THREADS, timeout=60)

    def counter(_: int) -> int:
        start.wait()
        retries = 0
        for _increment in range(INCREMENTS):
            while True:
                wave = store.get_wave(key)
                assert wave is not None
                try:
                    store.write_wave(
                        wave.model_copy(update={"start_attempts": wave.start_attempts + 1}),
                        updated_at="2025-01-01T00:00:01Z",
                    )
                    break
                except VersionConflict:
                    retries += 1
        return retries

    retries = sum(_in_threads(counter))
    final = store.get_wave(key)
    assert final is not None
    return {
        "increments": THREADS * INCREMENTS,
        "final_counter": final.start_attempts,
        "final_version": final.version,
        "lost_increments": THREADS * INCREMENTS - final.start_attempts,
        "_retries": retries,  # timing-dependent: not compared
    }


def race_create(store: WaveStore, client: Any) -> dict[str, Any]:
    """(c) Every thread creates the same new item (attribute_not_exists): one creator per round."""
    creators: list[list[int]] = []
    stored_ok = 0
    for round_ in range(CREATES):
        execution_id = f"create-{round_}-{uuid.uuid4().hex[:8]}"
        start = threading.Barrier(THREADS, timeout=60)

        def creator(thread: int, execution_id: str = execution_id, start: threading.Barrier = start) -> bool:
            start.wait()
            return _create(store, client, _wave(execution_id, f"creator-{thread}"))

        won = [thread for thread, created in enumerate(_in_threads(creator)) if created]
        creators.append(won)
        wave = store.get_wave(wave_key(execution_id, 1))
        stored_ok += (
            len(won) == 1 and wave is not None and (wave.version, wave.name) == (1, f"creator-{won[0]}")
        )
    return {
        "rounds": CREATES,
        "winners_per_round": dict(Counter(len(w) for w in creators)),
        "rounds_ok": sum(len(w) == 1 for w in creators),
        "conflicts": sum(THREADS - len(w) for w in creators),
        "stored_is_the_winners": stored_ok,
    }


RACES: dict[str, Callable[[WaveStore, Any], dict[str, Any]]] = {
    "one_winner": race_one_winner,
    "counter": race_counter,
    "create": race_create,
}
_OUTCOMES: dict[tuple[str, str], dict[str, Any]] = {}


def outcome(backend: str, race: str, dynalite_url: str) -> dict[str, Any]:
    """The race's outcome summary on the backend (run once per session, shared by the tests),
    with the history checker's verdict over every read and write the race made."""
    if (backend, race) not in _OUTCOMES:
        with _backend(backend, dynalite_url) as client:
            recorder = Recorder(wave_items)
            recorder.attach(client.meta.events)
            table = _table(client)
            # WaveStore._update sends ReturnValuesOnConditionCheckFailure=ALL_OLD. dynalite accepts
            # the parameter and ignores it (no `Item` with ConditionalCheckFailedException), so the
            # store runs unmodified on both: VersionConflict.current is None there, and the
            # reconciler re-reads (Reconciler._reread). No dynalite-only variant is needed.
            store = WaveStore(client, table)
            summary = RACES[race](store, client)
            items = [
                item
                for page in client.get_paginator("scan").paginate(TableName=table)
                for item in page["Items"]
            ]
            report = check(recorder.history(), {(i["pk"]["S"], i["sk"]["S"]): from_attrs(i) for i in items})
            summary["history_problems"] = (
                len(report.version_gaps)
                + len(report.lost_updates)
                + len(report.stale_reads)
                + len(report.unexplained_reads)
            )
            summary["_history"] = report.figures()
        _OUTCOMES[backend, race] = summary
    return _OUTCOMES[backend, race]


def compared(summary: dict[str, Any]) -> dict[str, Any]:
    """The outcome without the keys that legitimately differ (timing, ALL_OLD support)."""
    return {key: value for key, value in summary.items() if not key.startswith("_")}


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_winner_per_round_of_versioned_writes(backend: str, dynalite: str):
    # Given 8 threads that all read version v of one wave
    # When they all write v+1 with WaveStore.write_wave, round after round
    result = outcome(backend, "one_winner", dynalite)
    # Then every round has exactly one winner, whose write is what is stored, and 7 conflicts
    assert result["winners_per_round"] == {1: ROUNDS}
    assert result["stored_is_the_winners"] == ROUNDS
    assert result["conflicts"] == ROUNDS * (THREADS - 1)
    assert result["final_version"] == ROUNDS + 1
    assert result["history_problems"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_optimistic_counter_loses_no_increment(backend: str, dynalite: str):
    # Given 8 threads incrementing one counter with read / versioned write / retry on conflict
    result = outcome(backend, "counter", dynalite)
    # Then every increment is counted once and each took exactly one version
    assert result["lost_increments"] == 0
    assert result["final_counter"] == THREADS * INCREMENTS
    assert result["final_version"] == THREADS * INCREMENTS + 1
    assert result["history_problems"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_creator_per_conditional_create(backend: str, dynalite: str):
    # Given 8 threads creating the same item under attribute_not_exists, round after round
    result = outcome(backend, "create", dynalite)
    # Then exactly one creates it each round, and its item is the one stored
    assert result["winners_per_round"] == {1: CREATES}
    assert result["stored_is_the_winners"] == CREATES
    assert result["conflicts"] == CREATES * (THREADS - 1)
    assert result["history_problems"] == 0


def test_moto_with_the_global_lock_and_dynalite_give_the_same_outcomes(dynalite: str):
    # Given every race run on both backends
    summaries = {backend: {race: outcome(backend, race, dynalite) for race in RACES} for backend in BACKENDS}
    # Then the outcomes are identical (only timing-dependent retry counts and ALL_OLD may differ)
    same = all(compared(summaries["moto"][race]) == compared(summaries["dynalite"][race]) for race in RACES)
    rounds = sum(summaries[b][race]["rounds"] for b in BACKENDS for race in ("one_winner", "create"))
    rounds_ok = sum(summaries[b][race]["rounds_ok"] for b in BACKENDS for race in ("one_winner", "create"))
    figures = {
        "backends": list(BACKENDS),
        "rounds": rounds,
        "winners_per_round_ok": rounds_ok,
        "increments": sum(summaries[b]["counter"]["increments"] for b in BACKENDS),
        "lost_increments": sum(summaries[b]["counter"]["lost_increments"] for b in BACKENDS),
        "history_problems": sum(summaries[b][race]["history_problems"] for b in BACKENDS for race in RACES),
        "same_outcomes": same,
    }
    print(f"fidelity: {figures}")
    for backend in BACKENDS:
        print(f"  {backend}: {summaries[backend]}")
    record("fidelity", figures)
    for race in RACES:
        assert compared(summaries["moto"][race]) == compared(summaries["dynalite"][race]), race
    assert same and rounds_ok == rounds
