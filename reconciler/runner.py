"""The runner: carry an execution through its plan, one step at a time, from any caller.

`advance` reads the execution and its waves (one Query), asks the pure `lifecycle.plan_next` for
the one next step — start a wave, pause, cancel the waves that will never run, finish — takes
it, and decides again until there is nothing to do. It is called whenever a wave ends (the
stream's follow-up of that write), by the sweep for every unfinished execution, and after
resume and cancel. Every step is a versioned write, so racing callers are safe: a caller that
loses a race reads and decides again (the one retry policy), and whichever gets there first acts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from schemas.api import ExecutionDocument
from schemas.records import WaveRecord
from schemas.times import iso_z

from .controls import cancelled
from .documents import execution_document
from .finish import Finisher
from .lifecycle import Action, outbox_is_orphaned, plan_next, start_is_deferred
from .observability import logger, metrics_count
from .observe import DrsObserver
from .outbox import Publisher
from .retry import AGAIN, Again, RetryPolicy
from .starts import Starter
from .store import WaveStore


class Runner:
    def __init__(
        self,
        store: WaveStore,
        *,
        starter: Starter,
        finisher: Finisher,
        observers: Callable[[WaveRecord], DrsObserver],
        clock: Callable[[], datetime],
        policy: RetryPolicy,
        start_grace: timedelta,
        publisher: Publisher | None,
        flush: Callable[[Sequence[WaveRecord]], None],
    ) -> None:
        self._store = store
        self._starter = starter
        self._finisher = finisher
        self._observers = observers
        self._clock = clock
        self._policy = policy
        self._start_grace = start_grace
        self._publisher = publisher
        self._flush = flush

    def advance(self, execution_id: str) -> ExecutionDocument | None:
        """Take the execution's next steps until none is left; the document as it then stands,
        or None for an unknown execution. Idempotent and safe to race."""
        return self._policy.run(lambda: self._step(execution_id), what=f"advance {execution_id}")

    def _step(self, execution_id: str) -> ExecutionDocument | Again | None:
        found = self._store.get_execution(execution_id)
        if found is None:
            return None
        execution, waves = found
        if not waves:  # only DynamoDB's TTL removes waves: nothing is left to decide from
            logger.error("execution without waves", extra={"executionId": execution_id})
            return execution_document(execution, waves)
        step = plan_next(execution, waves, now=self._clock(), start_grace=self._start_grace)
        if step.action is Action.NONE:
            orphaned = outbox_is_orphaned(execution.updated_at, self._clock())
            if self._publisher is not None and execution.outbox and orphaned:
                execution = self._publisher.flush_execution(execution)
            return execution_document(execution, waves)
        logger.info(
            "execution step",
            extra={
                "executionId": execution_id,
                "waveNumber": step.wave_number,
                "action": step.action.value,
                "reason": step.reason,
            },
        )
        if step.action is Action.FINISH:
            return self._finisher.finish(execution, waves)
        now = iso_z(self._clock())
        assert step.wave_number is not None
        wave = next(w for w in waves if w.wave_number == step.wave_number)
        if step.action is Action.START:
            self._starter.start_wave(wave)
            if execution.paused_before is not None:
                self._store.write_execution(
                    execution.model_copy(update={"paused_before": None}), updated_at=now
                )
        elif step.action is Action.PAUSE:
            self._store.write_execution(
                execution.model_copy(update={"paused_before": step.wave_number}), updated_at=now
            )
            metrics_count("ExecutionsPaused")
        elif step.action is Action.CANCEL_REST and not self._adopted_instead(wave):
            doomed = cancelled(waves, step.wave_number, step.reason or "cancelled", now, stale_claim=True)
            self._flush(self._store.write_waves(doomed, updated_at=now))
        return AGAIN

    def _adopted_instead(self, wave: WaveRecord) -> bool:
        """Before cancelling a wave whose start was claimed long ago, adopt the job DRS may hold
        for it: a job that runs is reconciled to its end, never hidden behind CANCELLED. A
        deferred start started nothing, so there is nothing to look for."""
        if wave.start_requested_at is None or start_is_deferred(wave):
            return False
        found = self._observers(wave).find_started_job(
            wave.execution_id, wave.wave_number, wave.start_requested_at
        )
        if found is None:
            return False
        self._starter.record_job(wave, {"jobID": found.job_id, "creationDateTime": found.creation_time})
        return True
