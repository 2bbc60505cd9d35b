"""The start protocol: a PENDING wave's DRS job is started exactly once (docs/start-protocol.md).

StartRecovery is not idempotent, so every start goes through one versioned claim, one call (the
client never retries by itself), and one versioned write of the job id. What DRS answers decides
what follows, and the classification lives here, pure, in `classify_start_failure`:
- a job: recorded (LAUNCHING);
- a lost answer (5xx, read timeout): the claim stays; a tagged job is adopted by the sweep, or,
  after the start grace with none in DRS, the wave is claimed again;
- a passing refusal that proves nothing started (throttling, the concurrent-job quota, DRS or
  its credentials out of reach): the start is DEFERRED — the wave keeps its claim, says why
  (`startProblem`) and is tried again from `startRetryAt`, with the back-off and window of the
  one retry policy (`retry.py`); only when the window runs out does the wave FAIL;
- a definitive refusal (a server already in a job, an invalid request, access denied): the wave
  FAILS with DRS's message, and a refused start never starts later.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from schemas.records import WaveRecord, WaveStatus
from schemas.times import iso_z, normalize_time, parse_time

from .errors import ReconcilerError, TemporaryError, VersionConflict, client_error_code
from .lifecycle import MAX_START_ATTEMPTS, claim_is_fresh, start_is_deferred
from .observability import logger, metrics_count
from .observe import DrsObserver, job_tags
from .retry import RetryPolicy
from .spokes import SpokeAccessError
from .store import WaveStore, wave_from_item, wave_key

THROTTLED = frozenset({"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"})
# DRS answers that prove no job was started and that pass by themselves.
PASSING = THROTTLED | {"ServiceQuotaExceededException", "ExpiredTokenException", "ExpiredToken"}
UNREACHABLE = "DrsUnreachable"
NO_CREDENTIALS = "CredentialsUnavailable"
NO_START_ROLE = "StartRoleUnavailable"  # the target account's start role could not be assumed


class Answer(enum.StrEnum):
    STARTED = "started"
    LOST = "lost"  # DRS may or may not have started a job
    DEFERRED = "deferred"  # nothing started; ask again later
    REFUSED = "refused"  # nothing started; never ask again


@dataclass(frozen=True)
class StartAnswer:
    kind: Answer
    job: dict[str, Any] | None = None
    code: str = ""
    message: str = ""

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}"

    @property
    def refusal(self) -> str:
        """What a wave refused for good says (who refused: DRS, or the target's start role)."""
        if self.code == NO_START_ROLE:
            return f"could not start: {self.message}"
        return f"DRS refused StartRecovery: {self.reason}"


def classify_start_failure(error: BaseException) -> StartAnswer:
    """What an exception from StartRecovery proves (see the module docstring's list). A start
    role that cannot be assumed never reached DRS: nothing started; it passes when STS was only
    busy, and is refused for good when the spoke refuses the role (AccessDenied, ExternalId)."""
    if isinstance(error, SpokeAccessError):
        kind = Answer.DEFERRED if isinstance(error, TemporaryError) else Answer.REFUSED
        return StartAnswer(kind, code=NO_START_ROLE, message=str(error))
    if isinstance(error, ClientError):
        code = client_error_code(error) or "Error"
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        message = str(error.response.get("Error", {}).get("Message") or error)
        if code in PASSING:
            return StartAnswer(Answer.DEFERRED, code=code, message=message)
        if status >= 500:
            return StartAnswer(Answer.LOST, code=code, message=message)
        return StartAnswer(Answer.REFUSED, code=code, message=message)
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):  # never reached DRS
        return StartAnswer(Answer.DEFERRED, code=UNREACHABLE, message=str(error))
    if isinstance(error, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return StartAnswer(Answer.DEFERRED, code=NO_CREDENTIALS, message=str(error))
    return StartAnswer(Answer.LOST, code=type(error).__name__, message=str(error))


class Starter:
    """Claims, starts and records one wave's job; defers or fails it as DRS's answer says."""

    def __init__(
        self,
        store: WaveStore,
        *,
        drs_start: Callable[[WaveRecord], Any],
        observers: Callable[[WaveRecord], DrsObserver],
        clock: Callable[[], datetime],
        policy: RetryPolicy,
        start_grace: timedelta,
        sleep: Callable[[float], None],
        flush: Callable[[Sequence[WaveRecord]], None],
    ) -> None:
        self._store = store
        self._drs_start = drs_start
        self._observers = observers
        self._clock = clock
        self._policy = policy
        self._start_grace = start_grace
        self._sleep = sleep
        self._flush = flush

    def start_wave(self, wave: WaveRecord) -> WaveRecord:
        """Start a PENDING wave's DRS job exactly once; returns the wave as stored.

        The claim is a versioned write of `startRequestedAt` (and the attempt number): of any
        number of racing callers exactly one wins it, and only the winner calls StartRecovery.
        A claim younger than the start grace belongs to a caller that may still be running, so
        nobody else touches DRS. An older claim's caller is gone (the grace exceeds every
        function's timeout): DRS is asked for a job tagged with this wave first, and adopted if
        there is one; only with none is the wave claimed again and started, at most
        MAX_START_ATTEMPTS times, then FAILED. A deferred start is claimed again once due."""
        current = self._store.get_wave(wave_key(wave.execution_id, wave.wave_number)) or wave
        if current.status is not WaveStatus.PENDING or current.job_id:
            return current
        now_moment = self._clock()
        if start_is_deferred(current):
            assert current.start_retry_at is not None
            if now_moment < parse_time(current.start_retry_at):
                return current
        elif current.start_requested_at is not None:
            if claim_is_fresh(current, now_moment, self._start_grace):
                return current
            found = self._observers(current).find_started_job(
                current.execution_id, current.wave_number, current.start_requested_at
            )
            if found is not None:
                return self.record_job(
                    current, {"jobID": found.job_id, "creationDateTime": found.creation_time}
                )
            if current.start_attempts >= MAX_START_ATTEMPTS:
                return self._fail(
                    current,
                    f"no DRS job was started after {current.start_attempts} attempts "
                    f"(last requested at {current.start_requested_at}); start the recovery again",
                )
        now = iso_z(now_moment)
        try:
            claimed = self._store.write_wave(
                current.model_copy(
                    update={
                        "start_requested_at": now,
                        "start_attempts": current.start_attempts + 1,
                        "start_retry_at": None,
                    }
                ),
                updated_at=now,
            )
        except VersionConflict:
            logger.info("another caller claimed the wave's start", extra=_keys(current))
            return self._store.get_wave(wave_key(wave.execution_id, wave.wave_number)) or current
        stored, answer = self.start_claimed(claimed)
        if answer.kind is Answer.REFUSED:
            return self._fail(claimed, answer.refusal)
        return stored

    def start_claimed(self, wave: WaveRecord) -> tuple[WaveRecord, StartAnswer]:
        """Call StartRecovery for a wave this caller has claimed and act on the answer, except a
        definitive refusal, which the caller handles (fail the wave, or the whole execution)."""
        answer = self._call(wave)
        if answer.kind is Answer.STARTED:
            assert answer.job is not None
            logger.info("DRS job started", extra={**_keys(wave), "jobId": answer.job["jobID"]})
            return self.record_job(wave, answer.job), answer
        if answer.kind is Answer.LOST:
            logger.warning("StartRecovery answer lost; the sweep will adopt the job", extra=_keys(wave))
            metrics_count("StartAnswersLost")
            return wave, answer
        if answer.kind is Answer.DEFERRED:
            return self._defer(wave, answer), answer
        return wave, answer

    def _call(self, wave: WaveRecord) -> StartAnswer:
        """One StartRecovery, asked again after short pauses only while DRS throttles it (a
        throttled call started nothing)."""
        answer = StartAnswer(Answer.LOST)
        for pause in (*self._policy.start_pauses, None):
            try:
                job = self._drs_start(wave).start_recovery(
                    sourceServers=[{"sourceServerID": s.source_server_id} for s in wave.servers],
                    isDrill=wave.is_drill,
                    tags=job_tags(wave.execution_id, wave.wave_number),
                )["job"]
                return StartAnswer(Answer.STARTED, job=job)
            except (ClientError, BotoCoreError, SpokeAccessError) as error:
                answer = classify_start_failure(error)
            if answer.code in THROTTLED and pause is not None:
                self._sleep(pause)
                continue
            break
        return answer

    def _defer(self, wave: WaveRecord, answer: StartAnswer) -> WaveRecord:
        """Nothing started and the reason passes: keep the claim, say why, and name when the start
        is tried again; once the retry window is over, FAIL the wave instead."""
        now = self._clock()
        since = parse_time(wave.start_deferred_since) if wave.start_deferred_since else now
        if self._policy.window_closed(since, now):
            minutes = round((now - since).total_seconds() / 60)
            return self._fail(
                wave,
                f"DRS kept refusing StartRecovery for {minutes} min ({answer.reason}); nothing was "
                "started; start the recovery again",
            )
        retry_at = self._policy.next_start_at(since, now)
        deferred = wave.model_copy(
            update={
                "start_retry_at": iso_z(retry_at),
                "start_deferred_since": iso_z(since),
                "start_problem": answer.reason,
                # this claim provably started nothing: it does not count towards the attempts
                "start_attempts": max(0, wave.start_attempts - 1),
            }
        )
        logger.warning(
            "StartRecovery deferred",
            extra={**_keys(wave), "reason": answer.reason, "retryAt": iso_z(retry_at)},
        )
        metrics_count("StartsDeferred")
        try:
            return self._store.write_wave(deferred, updated_at=iso_z(now))
        except ReconcilerError as error:  # the claim stays; it expires and is resolved from DRS
            logger.warning("could not record the deferral", extra={**_keys(wave), "error": str(error)})
            return wave

    def record_job(self, wave: WaveRecord, job: dict[str, Any]) -> WaveRecord:
        """Store the job id (LAUNCHING) with a versioned write. Never raises: the job exists, so
        whatever goes wrong here the wave stays PENDING with its start requested and the sweep
        adopts the job by its tags."""
        keys = {**_keys(wave), "jobId": job["jobID"]}

        def attempt() -> WaveRecord:
            nonlocal wave
            now = iso_z(self._clock())
            started = wave.model_copy(
                update={
                    "job_id": job["jobID"],
                    "status": WaveStatus.LAUNCHING,
                    "start_time": normalize_time(job.get("creationDateTime")) or now,
                    "start_retry_at": None,
                    "start_deferred_since": None,
                    "start_problem": None,
                }
            )
            try:
                return self._store.write_wave(started, updated_at=now)
            except VersionConflict as conflict:
                current = (
                    wave_from_item(conflict.current)
                    if conflict.current
                    else self._store.get_wave(wave_key(wave.execution_id, wave.wave_number))
                )
                if current is None:
                    return wave
                if current.job_id or current.status is not WaveStatus.PENDING:
                    if current.job_id != job["jobID"]:
                        logger.error("DRS job started but its wave moved on without it", extra=keys)
                        metrics_count("OrphanedJobs")
                    return current  # the sweep recorded it first (or the wave ended)
                wave = current
                raise

        try:
            return self._policy.run(attempt, what=f"record job {job['jobID']}")
        except ReconcilerError as error:
            logger.error(
                "DRS job started but not recorded; the sweep will adopt it",
                extra={**keys, "error": str(error)},
            )
            return wave

    def _fail(self, wave: WaveRecord, reason: str) -> WaveRecord:
        now = iso_z(self._clock())
        failed = wave.model_copy(
            update={"status": WaveStatus.FAILED, "error": reason, "end_time": now, "start_retry_at": None}
        )
        try:
            written = self._policy.through_trouble(
                lambda: self._store.write_wave(failed, updated_at=now), sleep=self._sleep
            )
        except VersionConflict:
            return self._store.get_wave(wave_key(wave.execution_id, wave.wave_number)) or wave
        self._flush([written])
        return written


def _keys(wave: WaveRecord) -> dict[str, object]:
    return {"executionId": wave.execution_id, "waveNumber": wave.wave_number, "jobId": wave.job_id}
