"""The scheduled sweep: reconcile every in-flight wave, because DRS events are best effort.

Events can be lost, and a DRS job can complete after its last Launch Result, so correctness
rests here (I6). Only items in the sparse `inflight` index are visited: in-flight waves are
reconciled, unfinished executions advanced (a wave whose terminal write was not followed by the
next step gets it here), and events left in an outbox published. A finished wave costs nothing.

DRS throttles per account, and a hub serves many (docs/multi-account.md): waves are reconciled in
one lane per target account, at most `account_concurrency` of a lane at once while another lane
has waves waiting, the lanes taking turns for at most `concurrency` threads in all, so one big or
slow account cannot starve the others; a lane alone with work may use every free thread (a
single-account hub sweeps as wide as `concurrency`). A lane whose account refuses its role is reported once per wave (the wave's
`accessProblem`, without asking STS again) and the other lanes go on. One wave's failure is
logged and counted, and never stops the others.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.records import WaveRecord

from .errors import PermanentError, ReconcilerError
from .executions import Executions
from .observability import logger, metrics_count
from .reconcile import Reconciler
from .spokes import SpokeAccessError, Target
from .store import EXECUTION_SK, INFLIGHT_SHARDS, WaveKey, WaveStore

EXECUTIONS_LANE = "executions"  # execution items: advanced, in a lane of their own


@dataclass
class SweepReport:
    visited: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    unreachable: Counter[str] = field(default_factory=Counter)  # waves by account not reached

    def as_dict(self) -> dict[str, object]:
        return {
            "visited": self.visited,
            "outcomes": dict(self.outcomes),
            "errors": self.errors,
            "unreachable": dict(self.unreachable),
        }


@dataclass
class _Lane:
    items: deque[tuple[WaveKey, WaveRecord | None]] = field(default_factory=deque)
    running: int = 0
    refused: str | None = None  # the account refused its role in this sweep: why


class Sweeper:
    def __init__(
        self,
        store: WaveStore,
        reconciler: Reconciler,
        executions: Executions,
        *,
        concurrency: int,
        clock: Callable[[], datetime],
        account_concurrency: int | None = None,
        target_of: Callable[[WaveRecord], Target] | None = None,
        reserve: timedelta = timedelta(seconds=15),
    ) -> None:
        self._clock = clock
        self._reserve_ms = reserve.total_seconds() * 1000
        self._executions = executions
        self._store = store
        self._reconciler = reconciler
        self._concurrency = concurrency
        self._per_lane = account_concurrency or concurrency
        self._target_of = target_of

    def sweep(self, time_left_ms: Callable[[], int] | None = None) -> SweepReport:
        """One pass; `time_left_ms` is the invocation's remaining time (Lambda's context)."""
        report = SweepReport()
        first_shard = int(self._clock().timestamp() // 60) % INFLIGHT_SHARDS  # a new one each minute
        keys = list(self._store.inflight_waves(first_shard))
        with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="sweep") as pool:
            lanes: dict[str, _Lane] = {}
            for key, wave in zip(keys, pool.map(self._read, keys), strict=True):
                lanes.setdefault(self._lane_of(key, wave), _Lane()).items.append((key, wave))
            self._run(pool, lanes, report, time_left_ms)
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

    def _read(self, key: WaveKey) -> WaveRecord | None:
        """The wave as stored (its target names its lane); None for an execution item or a wave
        that cannot be read now (reconciled from a fresh read then)."""
        if key.sk == EXECUTION_SK:
            return None
        try:
            return self._store.get_wave(key)
        except Exception:  # unreadable now: its reconcile (from a fresh read) says why
            return None

    def _lane_of(self, key: WaveKey, wave: WaveRecord | None) -> str:
        if key.sk == EXECUTION_SK:
            return EXECUTIONS_LANE
        if wave is None or self._target_of is None:
            return "unknown"
        return self._target_of(wave).account_id

    def _run(
        self,
        pool: ThreadPoolExecutor,
        lanes: dict[str, _Lane],
        report: SweepReport,
        time_left_ms: Callable[[], int] | None,
    ) -> None:
        """Round-robin over the lanes: each turn starts one more wave of the next lane that has
        one waiting and room (below its bound), while the pool has room."""
        order = deque(sorted(lanes))
        running: dict[Future[str], str] = {}
        while True:
            started = True
            while started and len(running) < self._concurrency:
                started = False
                # Below their bound first; then, only while no lane below its bound waits, any lane
                # with work (the pool never idles while a lone account has waves to reconcile)
                for bounded in (True, False):
                    for _ in range(len(order)):
                        name = order[0]
                        order.rotate(-1)
                        lane = lanes[name]
                        if lane.items and (lane.running < self._per_lane or not bounded):
                            key, wave = lane.items.popleft()
                            lane.running += 1
                            running[pool.submit(self._one, key, wave, lane, time_left_ms)] = name
                            started = True
                            break
                    if started:
                        break
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                lanes[name].running -= 1
                outcome = future.result()
                report.visited += 1
                if outcome == "error":
                    report.errors += 1
                else:
                    report.outcomes[outcome] += 1
                if outcome == "unreachable":
                    report.unreachable[name] += 1

    def _one(
        self, key: WaveKey, wave: WaveRecord | None, lane: _Lane, time_left_ms: Callable[[], int] | None
    ) -> str:
        if time_left_ms is not None and time_left_ms() < self._reserve_ms:
            return "deferred"
        try:
            if key.sk == EXECUTION_SK:
                self._executions.advance(key.pk.removeprefix("EXEC#"))
                return "advanced"
            if lane.refused is not None and wave is not None:
                self._reconciler.note_access_problem(wave, lane.refused)  # no second AssumeRole
                return "unreachable"
            return self._reconciler.reconcile_wave(key, wave).value
        except SpokeAccessError as error:
            if isinstance(error, PermanentError):
                lane.refused = str(error)
            logger.warning(
                "sweep could not reach the wave's account",
                extra={"pk": key.pk, "sk": key.sk, "accountId": error.account_id, "error": str(error)},
            )
            return "unreachable"
        except ReconcilerError as error:
            logger.warning(
                "sweep could not reconcile wave", extra={"pk": key.pk, "sk": key.sk, "error": str(error)}
            )
            return "error"
        except Exception:  # one unreadable wave must never stop the sweep for the others
            logger.exception("sweep hit an unexpected error", extra={"pk": key.pk, "sk": key.sk})
            return "error"
