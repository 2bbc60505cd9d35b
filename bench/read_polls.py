"""What the read benchmark measures on each poll, and how a status page polls.

A status page polls at a fixed rate (setInterval: a poll starts every interval even when the last
one is still running), so `fixed_rate` does the same. Each poll is timed, and the AWS requests it
makes are counted by a botocore `before-call` hook on boto3's default session, attributed to the
polling thread through a thread-local (the reconciler's threads run at the same time and are not
counted). Each answer is checked for torn waves (I7) and, against the previous answer of the same
poller, for statuses moving backwards; `summarize` turns the polls of repeated runs into figures.

Every answered poll is also classed `steady` or `enriching` (`classes`), because a page's polls
are not alike: during a real 10-30-minute wave nearly every poll finds nothing new, and a median
over a short run mixes in the few polls that did. Our poll is steady when its answer equals the
previous answer to the same poller (nothing changed in the store since); the legacy poll is steady
when it made no enriching request (DescribeRecoveryInstances, EC2, StartRecovery): the Query,
DescribeJobs and PutItem it makes on every poll while a wave runs. A failed poll has no class.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from statistics import fmean
from typing import Any

import boto3

from bench.legacy import EC2_FIELDS
from bench.stats import median, ms, percentile
from local.live import TERMINAL_EXECUTION
from local.waiting import IDLE_TIMEOUT

SERVICES = ("dynamodb", "drs", "ec2")
WRITES = frozenset({"PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem", "DeleteItem"})
WAVE_ORDER = {"PENDING": 0, "LAUNCHING": 1, "COMPLETED": 2, "PARTIAL": 2, "FAILED": 2, "CANCELLED": 2}
LAUNCH_ORDER = {"PENDING": 0, "IN_PROGRESS": 1, "LAUNCHED": 2, "FAILED": 2, "TERMINATED": 3}
# Requests that make a legacy poll `enriching`: it found a change and acted on it.
ENRICHING_LEGACY = frozenset({"drs:DescribeRecoveryInstances", "drs:StartRecovery", "ec2:DescribeInstances"})
CLASSES = ("steady", "enriching")
EXTRA_POLLS = 2  # polls after the first terminal answer, as a page keeps polling a little
_tally = threading.local()  # the current thread's request counter while it measures


@dataclass
class Poll:
    at: float  # when it started, seconds after its poller started
    seconds: float
    calls: Counter[str]  # "service:Operation" -> requests
    document: dict[str, Any] | None  # None when the GET failed
    bare: float | None = None  # the bare Query timed right after it (ours only)

    @property
    def terminal(self) -> bool:
        return self.document is not None and self.document["status"] in TERMINAL_EXECUTION

    def count(self, service: str) -> int:
        return sum(n for name, n in self.calls.items() if name.startswith(f"{service}:"))

    @property
    def writes(self) -> int:
        return sum(n for name, n in self.calls.items() if name.split(":")[1] in WRITES)


def _count(model: Any, **_: Any) -> None:
    counts: Counter[str] | None = getattr(_tally, "counts", None)
    if counts is not None:
        counts[f"{model.service_model.service_name}:{model.name}"] += 1


@contextmanager
def counting() -> Iterator[None]:
    """Count requests of clients built inside this block (botocore copies a session's hooks into
    a client when it builds it, so build them after entering)."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    events = boto3.DEFAULT_SESSION.events
    events.register("before-call", _count)
    try:
        yield
    finally:
        events.unregister("before-call", _count)


def timed(call: Callable[[], Any], counts: Counter[str] | None = None) -> tuple[Any, float, Counter[str]]:
    """Run `call` in this thread: its result, its seconds and the AWS requests it made (into
    `counts` when given, so a caller still has them when `call` raises)."""
    counts = Counter() if counts is None else counts
    _tally.counts = counts
    started = time.perf_counter()
    try:
        return call(), time.perf_counter() - started, counts
    finally:
        _tally.counts = None


def fixed_rate(
    poll: Callable[[float], Poll], interval: float, idle_timeout: float = IDLE_TIMEOUT
) -> list[Poll]:
    """Start `poll(origin)` every `interval` s (overlapping when one is slow) until an answer is
    terminal, then EXTRA_POLLS more; the polls come back in the order their answers arrived.
    A recovery that stops changing its document for `idle_timeout` s is given up (and reported as
    unfinished): the limit follows progress, so a loaded machine only makes the run longer."""
    origin = time.monotonic()
    futures: list[Future[Poll]] = []
    stop_at: int | None = None
    last: Any = None
    changed = time.monotonic()
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="poll") as pool:
        while time.monotonic() - changed < idle_timeout:
            futures.append(pool.submit(poll, origin))
            answered = [f.result() for f in futures if f.done()]
            latest = max(answered, key=lambda p: p.at, default=None)
            if latest is not None and latest.document is not None and latest.document != last:
                last, changed = latest.document, time.monotonic()
            if stop_at is None:
                first = next((i for i, f in enumerate(futures) if f.done() and f.result().terminal), None)
                stop_at = None if first is None else first + 1 + EXTRA_POLLS
            if stop_at is not None and len(futures) >= stop_at:
                break
            time.sleep(max(0.0, origin + len(futures) * interval - time.monotonic()))
    return sorted((f.result() for f in futures), key=lambda p: p.at + p.seconds)


def torn_waves(document: dict[str, Any]) -> list[str]:
    """I7: waves shown COMPLETED or PARTIAL while a launched server lacks EC2 details (in a
    PARTIAL wave a server may lack them when its `error` says why)."""
    problems = []
    for wave in document["waves"]:
        if wave["status"] not in ("COMPLETED", "PARTIAL"):
            continue
        for server in wave["servers"]:
            explained = wave["status"] == "PARTIAL" and server.get("error")
            launched = server["launchStatus"] in ("LAUNCHED", "TERMINATED")
            if launched and not explained and not all(server.get(f) for f in EC2_FIELDS):
                problems.append(f"wave {wave['waveNumber']} {wave['status']}: {server['sourceServerId']}")
    return problems


def regressions(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Waves or servers whose status moved backwards between two answers to one poller."""
    problems = []
    for old, new in zip(before["waves"], after["waves"], strict=True):
        if WAVE_ORDER[new["status"]] < WAVE_ORDER[old["status"]]:
            problems.append(f"wave {old['waveNumber']} {old['status']} -> {new['status']}")
        now = {s["sourceServerId"]: s["launchStatus"] for s in new["servers"]}
        for server in old["servers"]:
            status = now.get(server["sourceServerId"], server["launchStatus"])
            if LAUNCH_ORDER[status] < LAUNCH_ORDER[server["launchStatus"]]:
                problems.append(f"{server['sourceServerId']} {server['launchStatus']} -> {status}")
    return problems


def classes(polls: list[Poll], kind: str) -> list[str | None]:
    """Each poll's class, in arrival order: ours by its answer's content against the previous
    answer (the first answer is enriching: it is news), legacy by the requests it made."""
    found: list[str | None] = []
    previous: dict[str, Any] | None = None
    for poll in polls:
        if poll.document is None:
            found.append(None)
            continue
        if kind == "legacy":
            enriching = any(name in ENRICHING_LEGACY for name in poll.calls)
        else:
            enriching = poll.document != previous
        found.append("enriching" if enriching else "steady")
        previous = poll.document
    return found


def of_class(polls: list[Poll], kind: str, name: str) -> list[Poll]:
    """The answered polls of class `name`."""
    return [p for p, c in zip(polls, classes(polls, kind), strict=True) if c == name]


def p50(polls: list[Poll]) -> float:
    """Median seconds of the answered polls."""
    return percentile([p.seconds for p in polls if p.document is not None], 50)


def bare_p50(polls: list[Poll]) -> float:
    """Median seconds of the bare Queries timed right after our polls."""
    return percentile([p.bare for p in polls if p.bare is not None], 50)


def summarize(runs: list[list[Poll]], kind: str) -> dict[str, Any]:
    """Per-poll requests, writes and checks over every poll of every run; latency percentiles per
    run, then their median over runs, for all answered polls and for each class."""
    polls = [p for run in runs for p in run]
    documents = [[p.document for p in run if p.document is not None] for run in runs]
    answered = sum(len(d) for d in documents)
    torn = sum(bool(torn_waves(d)) for run in documents for d in run)
    by_class = {name: [of_class(run, kind, name) for run in runs] for name in CLASSES}

    def run_percentile(q: float, chosen: list[list[Poll]]) -> float | None:  # answered polls only
        answers = [[p.seconds for p in run if p.document is not None] for run in chosen]
        found = [percentile(run, q) for run in answers if run]
        return ms(median(found)) if found else None

    finish = [
        min(p.at + p.seconds for p in run if p.terminal) for run in runs if any(p.terminal for p in run)
    ]
    return {
        "requests_per_poll": {s: round(fmean(p.count(s) for p in polls), 2) for s in SERVICES},
        "max_requests_per_poll": {s: max(p.count(s) for p in polls) for s in SERVICES},
        "min_dynamodb_per_poll": min(p.count("dynamodb") for p in polls),
        "writes_per_poll": round(fmean(p.writes for p in polls), 2),
        "max_writes_per_poll": max(p.writes for p in polls),
        "p50_ms": run_percentile(50, runs),
        "p99_ms": run_percentile(99, runs),
        "by_class": {
            name: {
                "p50_ms": run_percentile(50, chosen),
                "p99_ms": run_percentile(99, chosen),
                "polls": sum(len(run) for run in chosen),
                "share": round(sum(len(run) for run in chosen) / answered, 3) if answered else None,
            }
            for name, chosen in by_class.items()
        },
        "bare_p50_ms": ms(median([bare_p50(run) for run in runs])) if polls[0].bare is not None else None,
        "torn_reads": torn,
        "torn_rate": round(torn / answered, 4) if answered else None,
        "regressions": sum(bool(regressions(a, b)) for run in documents for a, b in pairwise(run)),
        "polls": len(polls),
        "failed_polls": len(polls) - answered,
        "recovery_s": round(median(finish), 1) if finish else None,  # first poll to first terminal answer
        "unfinished_runs": len(runs) - len(finish),
    }


def totals(summaries: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Torn reads, regressions and polls summed over every size."""
    torn, polls = (sum(s[key] for s in summaries.values()) for key in ("torn_reads", "polls"))
    answered = polls - sum(s["failed_polls"] for s in summaries.values())
    return {
        "torn_reads": torn,
        "torn_rate": round(torn / answered, 4) if answered else None,
        "regressions": sum(s["regressions"] for s in summaries.values()),
        "polls": polls,
        "failed_polls": polls - answered,
    }
