"""The sweep stops taking waves before its invocation would time out, and rotates its start.

A pass that cannot visit every in-flight wave in time must not die at the timeout (Lambda would
cut it mid-write and the same tail of the index would starve every pass): it defers the rest,
says so, and the next pass (a minute later) starts at the next shard of the index.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from local.stack import LocalStack
from reconciler import observability, runtime
from reconciler.store import INFLIGHT_SHARDS, WaveStore, inflight_shard
from tests.conftest import post_plan


@pytest.fixture
def one_by_one() -> Iterator[LocalStack]:
    with LocalStack(env={"SWEEP_CONCURRENCY": "1"}) as local:
        yield local


def in_flight(stack: LocalStack, count: int) -> None:
    for i in range(count):
        document = post_plan(stack, [[f"h{i}-a", f"h{i}-b"]], name=f"run {i}")
        stack.fake.set_job_status(document["waves"][0]["jobId"], "STARTED")


def test_a_pass_out_of_time_defers_the_rest_and_says_so(one_by_one: LocalStack, mocker):
    in_flight(one_by_one, 5)
    warnings = mocker.spy(observability.logger, "warning")
    budget = iter([60_000, 60_000] + [14_000] * 20)  # two waves' worth, then under the reserve
    lock = threading.Lock()

    def time_left() -> int:
        with lock:
            return next(budget)

    one_by_one.counter.reset()
    report = runtime.services().sweeper.sweep(time_left_ms=time_left).as_dict()

    assert report["visited"] == 5 + 5  # each execution item and its wave are in the index
    assert report["outcomes"]["deferred"] == 8
    assert one_by_one.counter.calls["drs:DescribeJobs"] <= 2  # deferred waves cost no DRS call
    assert any("ran out of time" in str(call.args[0]) for call in warnings.call_args_list)
    again = runtime.services().sweeper.sweep(time_left_ms=lambda: 60_000).as_dict()
    assert "deferred" not in again["outcomes"] and again["errors"] == 0


@pytest.mark.parametrize("minute", [0, 1, 2, 7])
def test_each_minute_a_pass_starts_at_the_next_shard(one_by_one: LocalStack, mocker, monkeypatch, minute):
    monkeypatch.setattr(runtime, "CLOCK", lambda: datetime(2026, 11, 27, 4, minute, 30, tzinfo=UTC))
    runtime.reset()
    spy = mocker.spy(WaveStore, "inflight_waves")

    runtime.services().sweeper.sweep()

    assert spy.call_args.args[1] == minute % INFLIGHT_SHARDS


def test_the_index_is_read_from_the_first_shard_round_to_the_one_before(one_by_one: LocalStack):
    in_flight(one_by_one, 6)
    store = runtime.services().store
    from_zero = list(store.inflight_waves(0))
    from_two = list(store.inflight_waves(2))
    assert sorted(from_zero, key=str) == sorted(from_two, key=str)  # every wave, whatever the start
    shard_of = {key: key_shard for key_shard, key in _by_shard(store)}
    assert [shard_of[k] for k in from_two] == sorted(
        (shard_of[k] for k in from_two), key=lambda s: (s - 2) % INFLIGHT_SHARDS
    )


def _by_shard(store: WaveStore) -> list[tuple[int, object]]:
    return [(int(inflight_shard(key)[1:]), key) for key in store.inflight_waves(0)]
