"""Reconcile one wave: read it, observe DRS/EC2, compute, write once if anything changed.

This is the loop every trigger shares (Launch Result event, sweep). It is level-triggered and
idempotent: the observation decides, so a duplicate or stale event computes the same record and
writes nothing. A lost version race re-runs `next_state` on the winner's record (returned by
DynamoDB with the failed condition) with the same observation, a bounded number of times: the
merge never moves backwards, so reusing the observation is safe and costs no extra DRS call.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime, timedelta

from schemas.records import WaveRecord
from schemas.times import iso_z, parse_time

from .core import complete_before_green_violations, next_state
from .errors import PermanentError, TemporaryError, VersionConflict
from .observability import MetricUnit, logger, metrics
from .observe import DrsObserver
from .store import WaveKey, WaveStore, wave_from_item, wave_key


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
        observer: DrsObserver,
        clock: Callable[[], datetime],
        *,
        ec2_grace: timedelta,
        conflict_retries: int,
    ) -> None:
        self._store = store
        self._observer = observer
        self._clock = clock
        self._grace = ec2_grace
        self._retries = conflict_retries

    def reconcile_job(self, job_id: str) -> Outcome:
        """Entry point for an event: the job id names the wave, nothing else is trusted."""
        key = self._store.find_wave_by_job(job_id)
        if key is None:
            logger.warning("unknown DRS job", extra={"jobId": job_id})
            metrics.add_metric(name="UnknownJobs", unit=MetricUnit.Count, value=1)
            return Outcome.UNKNOWN_JOB
        return self.reconcile_wave(key)

    def reconcile_wave(self, key: WaveKey) -> Outcome:
        stored = self._store.get_wave(key)
        if stored is None:
            logger.warning("wave vanished", extra={"pk": key.pk, "sk": key.sk})
            return Outcome.UNKNOWN_JOB
        keys = {"executionId": stored.execution_id, "waveNumber": stored.wave_number, "jobId": stored.job_id}
        if stored.is_terminal:
            return Outcome.TERMINAL
        if stored.job_id is None:
            return Outcome.NO_JOB
        metrics.add_metric(name="Reconciles", unit=MetricUnit.Count, value=1)
        observation = self._observer.observe(stored.job_id)
        if observation.job is None:
            logger.warning("DRS does not know the wave's job yet", extra=keys)
        for _attempt in range(self._retries):
            desired = next_state(stored, observation, ec2_grace=self._grace)
            if desired == stored:
                metrics.add_metric(name="SkippedWrites", unit=MetricUnit.Count, value=1)
                logger.debug("wave unchanged", extra=keys)
                return Outcome.UNCHANGED
            problems = complete_before_green_violations(desired)
            if problems:  # defence in depth: the core guarantees this; never store a torn wave
                raise PermanentError("; ".join(problems))
            try:
                written = self._store.write_wave(desired, updated_at=iso_z(self._clock()))
            except VersionConflict as conflict:
                metrics.add_metric(name="Conflicts", unit=MetricUnit.Count, value=1)
                logger.info("version conflict, re-reconciling", extra=keys)
                current = self._reread(conflict, key)
                if current is None:
                    return Outcome.UNKNOWN_JOB
                stored = current
                continue
            self._record_write(stored, written, keys)
            return Outcome.WRITTEN
        raise TemporaryError(f"gave up after {self._retries} version conflicts on {key.pk}/{key.sk}")

    def _reread(self, conflict: VersionConflict, key: WaveKey) -> WaveRecord | None:
        if conflict.current:
            return wave_from_item(conflict.current)
        return self._store.get_wave(key)

    def _record_write(self, before: WaveRecord, after: WaveRecord, keys: dict[str, object]) -> None:
        metrics.add_metric(name="Writes", unit=MetricUnit.Count, value=1)
        logger.info(
            "wave written",
            extra={
                **keys,
                "status": after.status.value,
                "previous": before.status.value,
                "version": after.version,
            },
        )
        if after.is_terminal and after.job_end_time and after.end_time:
            lag = (parse_time(after.end_time) - parse_time(after.job_end_time)).total_seconds()
            metrics.add_metric(
                name="JobCompleteToTerminalSeconds", unit=MetricUnit.Seconds, value=max(lag, 0.0)
            )


__all__ = ["Outcome", "Reconciler", "wave_key"]
