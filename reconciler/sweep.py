"""The scheduled sweep: reconcile every in-flight wave, because DRS events are best effort.

Events can be lost, and a DRS job can complete after its last Launch Result, so correctness
rests here (I6). Only items in the sparse `inflight` index are visited: in-flight waves are
reconciled, unfinished executions advanced (a wave whose terminal write was not followed by the
next step gets it here), events left in an outbox published, and a drill's open clean-up
reconciled to EC2's truth (reconciler/cleanup.py). A finished wave costs nothing.

DRS throttles per account, and a hub serves many (docs/multi-account.md): waves are reconciled in
one lane per target account, at most `account_concurrency` of a lane at once while another lane
has waves waiting, the lanes taking turns for at most `concurrency` threads in all, so one big or
slow account cannot starve the others; a lane alone with work may use every free thread (a
single-account hub sweeps as wide as `concurrency`). A lane whose account refuses its role is reported once per wave (the wave's
`accessProblem`, without asking STS again) and the other lanes go on. One wave's failure is
logged and counted, and never stops the others.

Each pass also counts the waves LAUNCHING for longer than `stuck_after` (WavesStuckLaunching,
0 included, so its alarm always has data): a DRS job that never ends is not something the sweep
can fix, an operator has to look.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.records import WaveRecord, WaveStatus
from schemas.times import parse_time

from .errors import PermanentError, ReconcilerError
from .executions import Executions
from .observability import logger, metrics_count
from .reconcile import Outcome, Reconciler
from .spokes import SpokeAccessError, Target
from .store import EXECUTION_SK, INFLIGHT_SHARDS, WaveKey, WaveStore

EXECUTIONS_LANE = "executions"  # execution items: advanced, in a lane of their own
# A wave LAUNCHING longer than this is stuck (STUCK_WAVE_MINUTES, stage param stuckWaveMinutes).
DEFAULT_STUCK_AFTER = timedelta(minutes=60)


@dataclass
class SweepReport:
    visited: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    unreachable: Counter[str] = field(default_factory=Counter)  # waves by account not reached
    stuck_launching: int = 0  # waves LAUNCHING longer than the pass's `stuck_after`

    def as_dict(self) -> dict[str, object]:
        return {
            "visited": self.visited,
            "outcomes": dict(self.outcomes),
            "errors": self.errors,
            "unreachable": dict(self.unreachable),
            "stuckLaunching": self.stuck_launching,
        }


def launching_since(wave: WaveRecord) -> datetime | None:
    """When a LAUNCHING wave's launch began: its job's creation, else its start request; None
    for any other status or a wave with neither time."""
    if wave.status is not WaveStatus.LAUNCHING:
        return None
    since = wave.start_time or wave.start_requested_at
    try:
        return parse_time(since) if since else None
    except ValueError:
        return None


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
        stuck_after: timedelta = DEFAULT_STUCK_AFTER,
    ) -> None:
        self._clock = clock
        self._stuck_after = stuck_after
        self._reserve_ms = reserve.total_seconds() * 1000
        self._executions = executions
        self._store = store
        self._reconciler = reconciler
        self._concurrency = concurrency
        self._per_lane = account_concurrency or concurrency
        self._target_of = target_of

    def sweep(
        self,
        time_left_ms: Callable[[], int] | None = None,
        *,
        stuck_after: timedelta | None = None,
    ) -> SweepReport:
        """One pass; `time_left_ms` is the invocation's remaining time (Lambda's context), and a
        wave LAUNCHING for longer than `stuck_after` (by default the sweeper's) is counted as stuck."""
        stuck_after = stuck_after or self._stuck_after
        report = SweepReport()
        now = self._clock()
        first_shard = int(now.timestamp() // 60) % INFLIGHT_SHARDS  # a new one each minute
        keys = list(self._store.inflight_waves(first_shard))
        with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="sweep") as pool:
            lanes: dict[str, _Lane] = {}
            for key, wave in zip(keys, pool.map(self._read, keys), strict=True):
                lanes.setdefault(self._lane_of(key, wave), _Lane()).items.append((key, wave))
                if wave is not None:
                    report.stuck_launching += self._is_stuck(wave, now - stuck_after)
            self._run(pool, lanes, report, time_left_ms)
        metrics_count("SweptWaves", report.visited)
        metrics_count("WavesStuckLaunching", report.stuck_launching)
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

    @staticmethod
    def _is_stuck(wave: WaveRecord, cutoff: datetime) -> bool:
        """LAUNCHING since before `cutoff` (as read before this pass reconciles it); logged."""
        since = launching_since(wave)
        if since is None or since >= cutoff:
            return False
        logger.warning(
            "wave stuck LAUNCHING",
            extra={
                "executionId": wave.execution_id,
                "waveNumber": wave.wave_number,
                "jobId": wave.job_id,
                "launchingSince": since.isoformat(),
            },
        )
        return True

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
            outcome = self._reconciler.reconcile_wave(key, wave)
            if outcome is Outcome.TERMINAL and (wave is None or wave.cleanup_is_open):
                return self._executions.cleaner.reconcile(key, wave) or outcome.value  # a drill's clean-up
            return outcome.value
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
