"""Reconcile one wave: read it, observe DRS/EC2, compute, write once if anything changed.

This is the loop every trigger shares (Launch Result event, sweep). It is level-triggered and
idempotent: the observation decides, so a duplicate or stale event computes the same record and
writes nothing. A lost version race re-runs `next_state` on the winner's record (returned by
DynamoDB with the failed condition) with the same observation, a bounded number of times: the
merge never moves backwards, so reusing the observation is safe and costs no extra DRS call.
A wave found or made terminal then publishes its Wave Completed event and advances the execution
(start the next wave, pause, finish), so waves move on from events alone. The event function's
reconciler hands those two steps off instead (no publisher, no `advance`: its role may not start
recovery): the table's stream delivers its terminal write to `follow_up`, in a function that may.
The follow-up (publish, advance) has that one name wherever it runs.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from schemas.records import WaveRecord
from schemas.times import iso_z, parse_time

from .core import awaiting_job_end, complete_before_green_violations, next_state, resolve_start
from .errors import PermanentError, ReconcilerError, VersionConflict
from .lifecycle import outbox_is_orphaned, start_is_deferred
from .observability import MetricUnit, logger, metrics_count
from .observation import Observation
from .observe import DrsObserver
from .outbox import Publisher
from .retry import AGAIN, Again, RetryPolicy
from .spokes import SpokeAccessError, Target
from .store import WaveKey, WaveStore, wave_from_item

T = TypeVar("T")

# A later settle look starts only with this much of the invocation left after it (one look is a
# DescribeJobs and a GetItem, plus a write; the SDK's own retries can stretch it).
SETTLE_RESERVE_MS = 10_000


class Outcome(enum.StrEnum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"
    TERMINAL = "terminal"
    UNKNOWN_JOB = "unknown_job"
    NO_JOB = "no_job"


class Reconciler:
    def __init__(
        self,
        store: WaveStore,
        observers: Callable[[WaveRecord], DrsObserver],
        clock: Callable[[], datetime],
        *,
        ec2_grace: timedelta,
        policy: RetryPolicy,
        start_grace: timedelta = timedelta(minutes=5),
        publisher: Publisher | None = None,
        advance: Callable[[str], object] | None = None,
        target_of: Callable[[WaveRecord], Target] | None = None,
        settle_checks: int = 0,
        settle_interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settle_checks = settle_checks
        self._settle_interval = settle_interval
        self._sleep = sleep
        self._publisher = publisher
        self._advance = advance
        self._store = store
        self._observers = observers
        self._target_of = target_of or _stored_target
        self._clock = clock
        self._grace = ec2_grace
        self._start_grace = start_grace
        self._policy = policy

    def reconcile_job(
        self, job_id: str, target: Target, *, time_left_ms: Callable[[], int] | None = None
    ) -> Outcome:
        """Entry point for an event: (account, Region, job id) names the wave, nothing else of
        the event is trusted (job ids are unique per account and Region only, and clients are
        built from the wave's stored target, never from the event).

        When every server's launch is over but the wave is not terminal yet (DRS completes the
        job a little after its last server, with no event of its own), keep looking every
        `settle_interval` seconds (from the start of one look to the next), at most
        `settle_checks` times: the wave turns terminal about a
        second after DRS's truth does, instead of at the next sweep. Later looks reuse what the
        earlier one saw, so they cost one DescribeJobs and one GetItem each. They stop while the
        invocation (`time_left_ms`, Lambda's context) still has time to end cleanly, and a later
        look that fails after a write landed is logged, not raised: the write stands, the sweep
        finishes the wave, and Lambda does not retry (or dead-letter) an event already handled.
        """
        key, stored = self._wave_of_job(job_id, target)
        if key is None:
            logger.warning("unknown DRS job", extra={"jobId": job_id, "accountId": target.account_id})
            metrics_count("UnknownJobs")
            return Outcome.UNKNOWN_JOB
        looked_at = time.monotonic()
        outcome, wave, seen = self._reconcile(key, known=None, stored=stored)
        wrote = outcome is Outcome.WRITTEN
        for _check in range(self._settle_checks):
            if wave is None or not awaiting_job_end(wave):
                break
            pause = max(0.0, self._settle_interval - (time.monotonic() - looked_at))
            if time_left_ms is not None and time_left_ms() < pause * 1000 + SETTLE_RESERVE_MS:
                metrics_count("SettleCut")
                logger.info("settle looks stop: the invocation is ending", extra=_keys(wave))
                break
            # a look every `settle_interval` seconds, however long each look took
            self._sleep(pause)
            metrics_count("SettleChecks")
            looked_at = time.monotonic()
            try:
                outcome, wave, seen = self._reconcile(key, known=seen)
            except ReconcilerError as error:
                if not wrote:
                    raise
                metrics_count("SettleLookFailed")
                logger.warning(
                    "a later look failed; the sweep finishes the wave",
                    extra={"jobId": job_id, "error": str(error)},
                )
                break
            wrote = wrote or outcome is Outcome.WRITTEN
        return Outcome.WRITTEN if wrote else outcome

    def reconcile_wave(self, key: WaveKey, stored: WaveRecord | None = None) -> Outcome:
        """Reconcile one wave (`stored`: the wave as just read, to save reading it again)."""
        return self._reconcile(key, known=None, stored=stored)[0]

    def _wave_of_job(self, job_id: str, target: Target) -> tuple[WaveKey | None, WaveRecord | None]:
        """The wave whose job this is in that account and Region, as stored; (None, None) when
        no wave's stored target is the event's."""
        for key in self._store.find_waves_by_job(job_id):
            wave = self._store.get_wave(key)
            if wave is not None and self._target_of(wave) == target:
                return key, wave
        return None, None

    def follow_up(self, key: WaveKey) -> Outcome:
        """Follow up a terminal write that a hand-off reconciler made (the stream names its item):
        publish the wave's pending events and take the execution's next step, as that writer
        would have. A wave that is not terminal (or is gone) needs nothing."""
        wave = self._store.get_wave(key)
        if wave is None or not wave.is_terminal:
            return Outcome.UNCHANGED
        self._follow_up(wave, written_now=True)
        return Outcome.TERMINAL

    def _reconcile(
        self, key: WaveKey, *, known: Observation | None, stored: WaveRecord | None = None
    ) -> tuple[Outcome, WaveRecord | None, Observation | None]:
        """One look and at most one write; returns the outcome, the wave as it now stands and
        what DRS/EC2 showed (None when no observation was made)."""
        if stored is None:
            stored = self._store.get_wave(key)
        if stored is None:
            logger.warning("wave vanished", extra={"pk": key.pk, "sk": key.sk})
            return Outcome.UNKNOWN_JOB, None, None
        if stored.is_terminal:
            self._follow_up(stored, written_now=False)  # a retry after a crash, or the sweep
            return Outcome.TERMINAL, stored, None
        metrics_count("Reconciles")
        job_id = stored.job_id
        if job_id is None:
            if stored.start_requested_at is None:
                return Outcome.NO_JOB, stored, None
            if start_is_deferred(stored):  # DRS refused it: no job to adopt; the runner retries it
                return Outcome.UNCHANGED, stored, None
            now = self._clock()  # before looking: a job created after this look is not missed
            observer = self._observers(stored)
            requested_at = stored.start_requested_at
            found = self._observe(
                stored,
                lambda: observer.find_started_job(stored.execution_id, stored.wave_number, requested_at),
            )
            if found is None:
                return Outcome.UNCHANGED, stored, None
            # Adopt the job and bring the wave to the job's truth in the same write: a job that
            # ran to its end before anyone adopted it ends its wave in this one pass (I6).
            observation = self._observe(stored, lambda: observer.observe(found.job_id, known=known))

            def adopted(w: WaveRecord) -> WaveRecord:
                wave = resolve_start(w, found, now=now, start_grace=self._start_grace)
                if wave.job_id != found.job_id:  # someone recorded another outcome meanwhile
                    return wave
                return next_state(wave, observation, ec2_grace=self._grace)

            outcome, wave = self._converge(key, stored, lambda w: reachable(adopted(w)))
            return outcome, wave, observation
        observer = self._observers(stored)
        observation = self._observe(stored, lambda: observer.observe(job_id, known=known))
        if observation.job is None:
            logger.warning("DRS does not know the wave's job yet", extra=_keys(stored))
        outcome, wave = self._converge(
            key, stored, lambda w: reachable(next_state(w, observation, ec2_grace=self._grace))
        )
        return outcome, wave, observation

    def _observe(self, stored: WaveRecord, look: Callable[[], T]) -> T:
        """Run one look at the wave's target; when its account's role cannot be used, say so on
        the wave (once: only a changed problem is written) and raise, so the event is retried or
        acknowledged as the error's kind says and the sweep tries again."""
        try:
            return look()
        except SpokeAccessError as error:
            self.note_access_problem(stored, str(error))
            raise

    def note_access_problem(self, stored: WaveRecord, problem: str) -> None:
        """Say on the wave why its target cannot be reached (a versioned write, only when the
        problem changed; losing a race or a hiccup only delays it to the next look)."""
        logger.warning("target unreachable", extra={**_keys(stored), "problem": problem})
        metrics_count("UnreachableWaves")
        if stored.access_problem == problem or stored.is_terminal:
            return
        try:
            self._store.write_wave(
                stored.model_copy(update={"access_problem": problem}), updated_at=iso_z(self._clock())
            )
        except ReconcilerError as failed:
            logger.info("could not record the access problem", extra={"error": str(failed)})

    def _converge(
        self, key: WaveKey, stored: WaveRecord, desired_of: Callable[[WaveRecord], WaveRecord]
    ) -> tuple[Outcome, WaveRecord | None]:
        """Write `desired_of(stored)` once if it differs; on a lost race, recompute from the
        winner's record (the merge never moves back, so the same observation is safe to reuse)."""

        def attempt() -> tuple[Outcome, WaveRecord | None] | Again:
            nonlocal stored
            desired = desired_of(stored)
            if desired == stored:
                metrics_count("SkippedWrites")
                logger.debug("wave unchanged", extra=_keys(stored))
                return Outcome.UNCHANGED, stored
            problems = complete_before_green_violations(desired)
            if problems:  # defence in depth: the core guarantees this; never store a torn wave
                raise PermanentError("; ".join(problems))
            try:
                written = self._store.write_wave(desired, updated_at=iso_z(self._clock()))
            except VersionConflict as conflict:
                metrics_count("Conflicts")
                logger.info("version conflict, re-reconciling", extra=_keys(stored))
                current = self._reread(conflict, key)
                if current is None:
                    return Outcome.UNKNOWN_JOB, None
                stored = current
                return AGAIN
            self._record_write(stored, written)
            if written.is_terminal:
                self._follow_up(written, written_now=True)
            return Outcome.WRITTEN, written

        return self._policy.run(attempt, what=f"reconcile {key.pk}/{key.sk}")

    def _follow_up(self, wave: WaveRecord, *, written_now: bool) -> None:
        """Publish the wave's pending events and take the execution's next step (start the next
        wave, pause, finish). Both are idempotent; the sweep repeats them if this dies. Events
        are published by the writer of the transition, or by anyone once they are orphaned (so
        concurrent duplicates of a Launch Result event do not each publish them)."""
        orphaned = not written_now and outbox_is_orphaned(wave.updated_at, self._clock())
        if self._publisher is not None and wave.outbox and (written_now or orphaned):
            self._publisher.flush_wave(wave)
        if self._advance is not None:
            self._advance(wave.execution_id)

    def _reread(self, conflict: VersionConflict, key: WaveKey) -> WaveRecord | None:
        if conflict.current:
            return wave_from_item(conflict.current)
        return self._store.get_wave(key)

    def _record_write(self, before: WaveRecord, after: WaveRecord) -> None:
        metrics_count("Writes")
        logger.info(
            "wave written",
            extra={
                **_keys(after),
                "status": after.status.value,
                "previous": before.status.value,
                "version": after.version,
            },
        )
        if after.is_terminal and after.job_end_time and after.end_time:
            lag = (parse_time(after.end_time) - parse_time(after.job_end_time)).total_seconds()
            metrics_count("JobCompleteToTerminalSeconds", max(lag, 0.0), MetricUnit.Seconds)


def _stored_target(wave: WaveRecord) -> Target:
    """A wave's target as stored (a wave stored before targets existed has none: "")."""
    return Target(wave.account_id or "", wave.region or "")


def reachable(wave: WaveRecord) -> WaveRecord:
    """The wave after a successful look at its target: no access problem any more."""
    return wave.model_copy(update={"access_problem": None}) if wave.access_problem else wave


def _keys(wave: WaveRecord) -> dict[str, object]:
    return {"executionId": wave.execution_id, "waveNumber": wave.wave_number, "jobId": wave.job_id}


__all__ = ["Outcome", "Reconciler"]
