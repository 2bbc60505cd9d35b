"""The scheduled sweep: reconcile every in-flight wave, because DRS events are best effort.

Events can be lost, and a DRS job can complete after its last Launch Result, so correctness
rests here (I6). Only items in the sparse `inflight` index are visited: in-flight waves are
reconciled, unfinished executions advanced (a wave whose terminal write was not followed by the
next step gets it here), and events left in an outbox published. A finished wave costs nothing. Waves are reconciled by a bounded pool (boto3 clients are thread-safe); one wave's
failure is logged and counted, and never stops the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .errors import ReconcilerError
from .executions import Executions
from .observability import logger, metrics_count
from .reconcile import Reconciler
from .store import EXECUTION_SK, INFLIGHT_SHARDS, WaveKey, WaveStore


@dataclass
class SweepReport:
    visited: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"visited": self.visited, "outcomes": dict(self.outcomes), "errors": self.errors}


class Sweeper:
    def __init__(
        self,
        store: WaveStore,
        reconciler: Reconciler,
        executions: Executions,
        *,
        concurrency: int,
        clock: Callable[[], datetime],
        reserve: timedelta = timedelta(seconds=15),
    ) -> None:
        self._clock = clock
        self._reserve_ms = reserve.total_seconds() * 1000
        self._executions = executions
        self._store = store
        self._reconciler = reconciler
        self._concurrency = concurrency

    def sweep(self, time_left_ms: Callable[[], int] | None = None) -> SweepReport:
        """One pass; `time_left_ms` is the invocation's remaining time (Lambda's context)."""
        report = SweepReport()

        def one(key: WaveKey) -> str:
            if time_left_ms is not None and time_left_ms() < self._reserve_ms:
                return "deferred"
            try:
                if key.sk == EXECUTION_SK:
                    self._executions.advance(key.pk.removeprefix("EXEC#"))
                    return "advanced"
                return self._reconciler.reconcile_wave(key).value
            except ReconcilerError as error:
                logger.warning(
                    "sweep could not reconcile wave", extra={"pk": key.pk, "sk": key.sk, "error": str(error)}
                )
                return "error"
            except Exception:  # one unreadable wave must never stop the sweep for the others
                logger.exception("sweep hit an unexpected error", extra={"pk": key.pk, "sk": key.sk})
                return "error"

        with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="sweep") as pool:
            first_shard = int(self._clock().timestamp() // 60) % INFLIGHT_SHARDS  # a new one each minute
            for outcome in pool.map(one, self._store.inflight_waves(first_shard)):
                report.visited += 1
                if outcome == "error":
                    report.errors += 1
                else:
                    report.outcomes[outcome] += 1
        metrics_count("SweptWaves", report.visited)
        if report.errors:
            metrics_count("SweepErrors", report.errors)
        deferred = report.outcomes.get("deferred", 0)
        if deferred:
            metrics_count("SweepDeferred", deferred)
            logger.warning(
                "sweep ran out of time: waves left to the next pass (raise SWEEP_CONCURRENCY)",
                extra={"deferred": deferred, "visited": report.visited},
            )
        logger.info("sweep finished", extra=report.as_dict())
        return report
