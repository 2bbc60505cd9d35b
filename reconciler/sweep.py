"""The scheduled sweep: reconcile every in-flight wave, because DRS events are best effort.

Events can be lost, and a DRS job can complete after its last Launch Result, so correctness
rests here (I6). Only items in the sparse `inflight` index are visited: in-flight waves are
reconciled, unfinished executions advanced (a wave whose terminal write was not followed by the
next step gets it here), and events left in an outbox published. A finished wave costs nothing. Waves are reconciled by a bounded pool (boto3 clients are thread-safe); one wave's
failure is logged and counted, and never stops the others.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .errors import ReconcilerError
from .executions import Executions
from .observability import logger, metrics_count
from .reconcile import Reconciler
from .store import EXECUTION_SK, WaveKey, WaveStore


@dataclass
class SweepReport:
    visited: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"visited": self.visited, "outcomes": dict(self.outcomes), "errors": self.errors}


class Sweeper:
    def __init__(
        self, store: WaveStore, reconciler: Reconciler, executions: Executions, *, concurrency: int
    ) -> None:
        self._executions = executions
        self._store = store
        self._reconciler = reconciler
        self._concurrency = concurrency

    def sweep(self) -> SweepReport:
        report = SweepReport()

        def one(key: WaveKey) -> str:
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
            for outcome in pool.map(one, self._store.inflight_waves()):
                report.visited += 1
                if outcome == "error":
                    report.errors += 1
                else:
                    report.outcomes[outcome] += 1
        metrics_count("SweptWaves", report.visited)
        if report.errors:
            metrics_count("SweepErrors", report.errors)
        logger.info("sweep finished", extra=report.as_dict())
        return report
