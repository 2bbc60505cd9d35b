"""Drill clean-up: terminate a finished execution's recovery instances exactly once, and follow
them until EC2 says terminated.

TerminateRecoveryInstances, like StartRecovery, is not something to send twice on a guess, so it
follows the start protocol's shape (docs/start-protocol.md, README "Clean-up after a drill"):
1. **Claim.** `request` writes every wave to clean up REQUESTED with `cleanupRequestedAt` and its
   attempt, in one versioned transaction (I3): of racing requests one wins, the others re-read
   and find the clean-up already asked (answered with the document, nothing done twice). The
   claim also puts the wave on the sweep's worklist (`inflight`) until its clean-up is over.
2. **Call.** Only the claimer calls TerminateRecoveryInstances (200 ids a call, the wave's
   LAUNCHED servers' recovery instances), on a client without SDK retries; only throttling (which
   proves nothing was done) is asked again after the one retry policy's short pauses.
3. **Record.** The TERMINATE job ids are written (versioned): TERMINATING.
4. **Reconcile.** The sweep looks at every open clean-up (DRS's recovery instances, the TERMINATE
   jobs, EC2's states) and `cleanup_rules.next_cleanup` decides: a TERMINATE job DRS holds for
   the instances is adopted whatever answer was lost; EC2's `terminated` on every instance ends
   it (TERMINATED); a claim older than the grace with instances still running and no job under
   way is claimed again and asked again (at most three claims, then FAILED saying why).

What DRS answers (`starts.classify_start_failure`): a job is recorded; a lost answer (5xx, read
timeout) keeps the claim for the sweep to adopt; a passing refusal (throttling after the pauses,
DRS out of reach) keeps the claim and says why on the wave, and the sweep asks again after the
grace; a definitive refusal (AccessDenied, ValidationException, ConflictException) ends the
wave's clean-up FAILED with DRS's message. A wave's own status never changes (I1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from schemas.api import ExecutionDocument
from schemas.records import TERMINAL_EXECUTION_STATUSES, WaveRecord
from schemas.times import iso_z

from .cleanup_rules import (
    CleanupLook,
    chunked,
    claimed,
    cleanup_targets,
    failed,
    needs_cleanup,
    next_cleanup,
    to_terminate,
    with_jobs,
)
from .controls import NotFound, WrongState
from .documents import execution_document
from .errors import ReconcilerError, VersionConflict
from .lifecycle import derive_status
from .observability import logger, metrics_count
from .observe import DrsObserver
from .retry import RetryPolicy
from .spokes import SpokeAccessError
from .starts import THROTTLED, Answer, StartAnswer, classify_start_failure
from .store import WaveKey, WaveStore, wave_from_item, wave_key


class Cleaner:
    """Claims, asks and records a drill's clean-up; the sweep reconciles it to EC2's truth."""

    def __init__(
        self,
        store: WaveStore,
        *,
        drs_terminate: Callable[[WaveRecord], Any],
        observers: Callable[[WaveRecord], DrsObserver],
        clock: Callable[[], datetime],
        policy: RetryPolicy,
        grace: timedelta,
        sleep: Callable[[float], None],
    ) -> None:
        self._store = store
        self._drs_terminate = drs_terminate
        self._observers = observers
        self._clock = clock
        self._policy = policy
        self._grace = grace
        self._sleep = sleep

    # ------------------------------------------------------------------ the operator's request

    def request(self, execution_id: str, *, confirm_recovery: bool) -> ExecutionDocument:
        """Clean up a finished execution: claim every wave with instances to terminate, then ask
        DRS for each. Refused (WrongState, nothing written, nothing asked) while the execution is
        not finished, for a recovery unless `confirm_recovery`, and when nothing launched. Asked
        again, it answers the document and does nothing (the claims stand)."""

        def attempt() -> list[WaveRecord]:
            found = self._store.get_execution(execution_id)
            if found is None:
                raise NotFound(f"no execution {execution_id}")
            execution, waves = found
            status = derive_status(execution, waves)
            if (
                not waves
                or not all(w.is_terminal for w in waves)
                or status not in TERMINAL_EXECUTION_STATUSES
            ):
                raise WrongState(
                    f"execution {execution_id} is {status.value}; only a finished execution's "
                    "instances can be cleaned up"
                )
            if not execution.is_drill and not confirm_recovery:
                raise WrongState(
                    f"execution {execution_id} is a recovery, not a drill: its instances are the "
                    'recovered workload; send {"confirmRecovery": true} to terminate them'
                )
            wanted = [w for w in waves if needs_cleanup(w)]
            if not wanted:
                if any(w.cleanup_status is not None for w in waves):
                    return []  # already asked: the claims stand, nothing is done twice
                raise WrongState(f"execution {execution_id} has no recovery instances to terminate")
            now = iso_z(self._clock())
            return self._store.write_waves([claimed(w, now) for w in wanted], updated_at=now)

        claims = self._policy.run(attempt, what=f"clean up {execution_id}")
        logger.info("clean-up requested", extra={"executionId": execution_id, "waves": len(claims)})
        if claims:
            metrics_count("CleanupsRequested")
        for wave in claims:
            self.terminate_claimed(wave)
        found = self._store.get_execution(execution_id)
        assert found is not None
        return execution_document(*found)

    # ------------------------------------------------------------------ one claimed wave

    def terminate_claimed(self, wave: WaveRecord, ids: Sequence[str] | None = None) -> WaveRecord:
        """Ask DRS to terminate a claimed wave's instances (`ids`, default all its targets') and
        act on the answer; never raises for DRS's answer (the claim stands for the sweep)."""
        ids = list(to_terminate(wave) if ids is None else ids)
        jobs: list[str] = []
        answer = StartAnswer(Answer.STARTED)
        for batch in chunked(ids):
            answer = self._call(wave, batch)
            if answer.kind is not Answer.STARTED:
                break
            assert answer.job is not None
            jobs.append(str(answer.job["jobID"]))
        keys = _keys(wave)
        if jobs:
            logger.info("DRS terminate jobs started", extra={**keys, "cleanupJobIds": jobs})
            wave = self._change(wave, lambda w: with_jobs(w, jobs), "record terminate jobs")
        if answer.kind is Answer.STARTED:
            return wave
        if answer.kind is Answer.REFUSED:
            logger.warning("DRS refused TerminateRecoveryInstances", extra={**keys, "reason": answer.reason})
            now = iso_z(self._clock())
            reason = f"DRS refused TerminateRecoveryInstances: {answer.reason}"
            return self._change(wave, lambda w: failed(w, reason, now), "record refused clean-up")
        if answer.kind is Answer.LOST:
            logger.warning("TerminateRecoveryInstances answer lost; the sweep adopts its job", extra=keys)
            metrics_count("CleanupAnswersLost")
            return wave
        logger.warning("TerminateRecoveryInstances deferred", extra={**keys, "reason": answer.reason})
        metrics_count("CleanupsDeferred")
        problem = f"DRS did not take TerminateRecoveryInstances yet ({answer.reason}); asked again later"
        return self._change(
            wave,
            lambda w: w.model_copy(update={"cleanup_error": problem}) if w.cleanup_is_open else w,
            "record deferred clean-up",
        )

    def _call(self, wave: WaveRecord, ids: list[str]) -> StartAnswer:
        """One TerminateRecoveryInstances, asked again after short pauses only while DRS
        throttles it (a throttled call did nothing)."""
        answer = StartAnswer(Answer.LOST)
        for pause in (*self._policy.start_pauses, None):
            try:
                job = self._drs_terminate(wave).terminate_recovery_instances(recoveryInstanceIDs=ids)["job"]
                metrics_count("TerminateCalls")
                return StartAnswer(Answer.STARTED, job=job)
            except (ClientError, BotoCoreError, SpokeAccessError) as error:
                answer = classify_start_failure(error)
            if answer.code in THROTTLED and pause is not None:
                self._sleep(pause)
                continue
            break
        return answer

    def _change(self, wave: WaveRecord, change: Callable[[WaveRecord], WaveRecord], what: str) -> WaveRecord:
        """Write `change(current)` under the version rule, re-reading after a lost race; a write
        that cannot land now is logged (the claim stands: the sweep looks and adopts)."""
        key = wave_key(wave.execution_id, wave.wave_number)

        def attempt() -> WaveRecord:
            nonlocal wave
            desired = change(wave)
            if desired == wave:
                return wave
            try:
                return self._store.write_wave(desired, updated_at=iso_z(self._clock()))
            except VersionConflict as conflict:
                current = wave_from_item(conflict.current) if conflict.current else self._store.get_wave(key)
                if current is None:
                    return wave
                wave = current
                raise

        try:
            return self._policy.run(attempt, what=f"{what} {key.pk}/{key.sk}")
        except ReconcilerError as error:
            logger.error(
                "clean-up not recorded; the sweep looks again", extra={**_keys(wave), "error": str(error)}
            )
            return wave

    # ------------------------------------------------------------------ the sweep

    def reconcile(self, key: WaveKey, stored: WaveRecord | None = None) -> str | None:
        """Bring an open clean-up to DRS's and EC2's truth: one look, at most one write, and the
        call again when the rules say so (claimed first). Returns the sweep's outcome word (None:
        no clean-up is open)."""
        wave = stored if stored is not None and stored.cleanup_is_open else self._store.get_wave(key)
        if wave is None or not wave.cleanup_is_open:
            return None
        metrics_count("CleanupReconciles")
        look = self._look(wave)
        desired, again = next_cleanup(wave, look, grace=self._grace)
        written = wave
        if desired != wave:
            written = self._change(
                wave, lambda w: next_cleanup(w, look, grace=self._grace)[0], "reconcile clean-up"
            )
        if not again or not written.cleanup_is_open:
            return "cleanup_written" if written != wave else "unchanged"
        ids = to_terminate(written, look)
        now = iso_z(self._clock())
        try:
            reclaimed = self._store.write_wave(claimed(written, now), updated_at=now)
        except VersionConflict:
            logger.info("another caller claimed the clean-up", extra=_keys(written))
            return "unchanged"
        logger.warning(
            "clean-up claim expired with instances running and no job: asking DRS again",
            extra={**_keys(reclaimed), "attempt": reclaimed.cleanup_attempts},
        )
        after = self.terminate_claimed(reclaimed, ids)
        if after.cleanup_is_open and after.cleanup_job_ids:  # one sweep converges (I6)
            look = self._look(after)
            self._change(after, lambda w: next_cleanup(w, look, grace=self._grace)[0], "reconcile clean-up")
        return "cleanup_asked"

    def _look(self, wave: WaveRecord) -> CleanupLook:
        targets = cleanup_targets(wave)
        now = self._clock()  # before looking: a job created after this look is not missed
        drs, ec2, jobs = self._observers(wave).cleanup_look(
            [s.recovery_instance_id for s in targets if s.recovery_instance_id],
            [s.recovered_instance_id for s in targets if s.recovered_instance_id],
            list(wave.cleanup_job_ids),
            wave.cleanup_requested_at,
        )
        return CleanupLook(drs_states=drs, ec2_states=ec2, jobs=jobs, observed_at=now)


def _keys(wave: WaveRecord) -> dict[str, object]:
    return {"executionId": wave.execution_id, "waveNumber": wave.wave_number}
