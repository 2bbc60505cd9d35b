"""The operator's controls: resume a paused execution, cancel one.

Each is one versioned write (cancel: one transaction with the waves it cancels), so of racing
operations one wins and the other re-reads and answers from the state it finds: a wrong-state
request is refused (409) saying why. After the write the runner takes the next step; if that
cannot happen now, the control still stands (the sweep takes the step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from schemas.api import ExecutionDocument
from schemas.records import TERMINAL_EXECUTION_STATUSES, ExecutionRecord, WaveRecord, WaveStatus
from schemas.times import iso_z

from .documents import execution_document
from .errors import PermanentError, ReconcilerError
from .lifecycle import derive_status, never_started
from .observability import logger, metrics_count
from .retry import RetryPolicy
from .store import WaveStore


class WrongState(PermanentError):
    """An operation the execution's state does not allow (409)."""


class NotFound(PermanentError):
    """No such execution (404)."""


def cancelled(
    waves: Sequence[WaveRecord], first: int, reason: str, now: str, *, stale_claim: bool = False
) -> list[WaveRecord]:
    """Waves from `first` on that never started, CANCELLED with the reason. With `stale_claim`,
    wave `first` goes too even though its start was claimed (the caller found no job for it)."""
    return [
        w.model_copy(
            update={"status": WaveStatus.CANCELLED, "error": reason, "end_time": now, "start_retry_at": None}
        )
        for w in waves
        if w.wave_number >= first
        and w.status is WaveStatus.PENDING
        and w.job_id is None
        and (never_started(w) or (stale_claim and w.wave_number == first))
    ]


class Controls:
    def __init__(
        self,
        store: WaveStore,
        *,
        clock: Callable[[], datetime],
        policy: RetryPolicy,
        advance: Callable[[str], ExecutionDocument | None],
        flush: Callable[[Sequence[WaveRecord]], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy
        self._advance = advance
        self._flush = flush

    def resume(self, execution_id: str) -> ExecutionDocument:
        """PAUSED -> RUNNING: release the wave it waits before, then start it."""

        def attempt() -> ExecutionDocument:
            execution, waves = self._require(execution_id)
            status = derive_status(execution, waves)
            if status.value != "PAUSED" or execution.paused_before is None:
                raise WrongState(
                    f"execution {execution_id} is {status.value}; only a PAUSED execution can be resumed"
                )
            released = execution.model_copy(
                update={"paused_before": None, "resumed": (*execution.resumed, execution.paused_before)}
            )
            self._store.write_execution(released, updated_at=iso_z(self._clock()))
            logger.info("execution resumed", extra={"executionId": execution_id})
            return self._then_advance(execution_id) or execution_document(released, waves)

        return self._policy.run(attempt, what=f"resume {execution_id}")

    def cancel(self, execution_id: str) -> ExecutionDocument:
        """Stop further waves: those never started become CANCELLED at once (one transaction with
        the execution); a running wave's DRS job goes on and its wave is reconciled to its end."""

        def attempt() -> ExecutionDocument:
            execution, waves = self._require(execution_id)
            status = derive_status(execution, waves)
            if execution.cancel_requested_at is not None:
                raise WrongState(
                    f"execution {execution_id} was already cancelled at {execution.cancel_requested_at};"
                    " a wave already running is reconciled to its end"
                )
            if execution.is_finished or status in TERMINAL_EXECUTION_STATUSES:
                raise WrongState(f"execution {execution_id} is {status.value}; it can no longer be cancelled")
            now = iso_z(self._clock())
            requested = execution.model_copy(update={"cancel_requested_at": now, "paused_before": None})
            first = min((w.wave_number for w in waves if never_started(w)), default=None)
            doomed = cancelled(waves, first, "cancelled by an operator", now) if first else []
            _, ended = self._store.write_together(requested, doomed, updated_at=now)
            self._flush(ended)
            logger.info("execution cancelled", extra={"executionId": execution_id, "waves": len(doomed)})
            metrics_count("ExecutionsCancelled")
            return self._then_advance(execution_id) or execution_document(requested, waves)

        return self._policy.run(attempt, what=f"cancel {execution_id}")

    def _then_advance(self, execution_id: str) -> ExecutionDocument | None:
        """The next step after a control landed; if it cannot be taken now, the control still
        stands and the sweep takes the step."""
        try:
            return self._advance(execution_id)
        except ReconcilerError as error:
            logger.warning(
                "next step left to the sweep", extra={"executionId": execution_id, "error": str(error)}
            )
            return None

    def _require(self, execution_id: str) -> tuple[ExecutionRecord, list[WaveRecord]]:
        found = self._store.get_execution(execution_id)
        if found is None:
            raise NotFound(f"no execution {execution_id}")
        return found
