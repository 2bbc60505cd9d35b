"""Executions: record a plan, start each wave's DRS job exactly once, carry the plan through.

`create` validates and records the plan (execution and waves in one transaction, wave 1's start
claimed in it), then starts wave 1. `advance` takes the execution's next step as the pure
`lifecycle.plan_next` names it — start the next wave, pause, cancel the waves that will never
run, finish — and is called whenever a wave ends, by the sweep, and after `resume`/`cancel`.
Starting a wave follows the claim protocol in docs/start-protocol.md: a versioned claim, one
StartRecovery (never retried by the SDK; it is not idempotent) tagged with the execution and
wave, the job recorded with a versioned write; an expired claim is resolved by adopting the
tagged job DRS holds, or claimed again when there is none. An invalid plan writes nothing and
starts nothing. A start DRS refuses marks the wave FAILED with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

from schemas.api import SOURCE_SERVER_ID, CreateExecutionRequest, ExecutionDocument
from schemas.records import TERMINAL_EXECUTION_STATUSES, ExecutionRecord, ServerRecord, WaveRecord, WaveStatus
from schemas.times import iso_z, normalize_time

from .documents import execution_document
from .errors import (
    PermanentError,
    ReconcilerError,
    VersionConflict,
    classify_aws_error,
    client_error_code,
)
from .lifecycle import (
    MAX_START_ATTEMPTS,
    Action,
    claim_is_fresh,
    derive_status,
    execution_completed_event,
    expiry,
    outbox_is_orphaned,
    plan_next,
)
from .observability import logger, metrics_count
from .observe import DRS_FILTER_MAX, DrsObserver, chunks, job_tags
from .outbox import Publisher
from .plans import PlanInvalid, plan_problems
from .store import TooLarge, WaveStore, wave_from_item, wave_key

# Pauses between StartRecovery attempts that DRS refused with ThrottlingException (seconds).
THROTTLE_BACKOFF = (0.2, 0.6)
LOOKUP_WHEN_INVALID = 1000
UNREACHABLE = "DrsUnreachable"


class WrongState(PermanentError):
    """An operation the execution's state does not allow (409)."""


class NotFound(PermanentError):
    """No such execution (404)."""


class StartRejected(ReconcilerError):
    """DRS refused to start a wave's job; the execution was recorded with the wave FAILED."""

    def __init__(self, code: str, message: str, document: ExecutionDocument) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.document = document


class _Refused(Exception):
    """DRS answered StartRecovery with an error that proves no job was started."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Executions:
    def __init__(
        self,
        store: WaveStore,
        *,
        drs: Any,
        drs_start: Any,
        observer: DrsObserver,
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
        max_servers_per_wave: int,
        page_size: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        start_grace: timedelta = timedelta(minutes=5),
        retention: timedelta = timedelta(days=90),
        publisher: Publisher | None = None,
    ) -> None:
        self._start_grace = start_grace
        self._retention = retention
        self._publisher = publisher
        self._store = store
        self._drs = drs
        self._drs_start = drs_start
        self._observer = observer
        self._clock = clock
        self._new_id = new_id
        self._max = max_servers_per_wave
        self._page = {"PageSize": page_size or DRS_FILTER_MAX}
        self._sleep = sleep

    def create(self, request: CreateExecutionRequest) -> ExecutionDocument:
        problems = plan_problems(request, self._max)
        well_formed = list(
            dict.fromkeys(
                sid
                for wave in request.waves
                for sid in wave.source_server_ids
                if SOURCE_SERVER_ID.fullmatch(sid)
            )
        )
        # A plan already known to be wrong costs DRS at most a few lookups (the sweep shares the
        # account's DRS rate), so its unknown ids are listed only when they are few.
        if not problems or len(well_formed) <= LOOKUP_WHEN_INVALID:
            hostnames = self._hostnames(well_formed)
            unknown = [sid for sid in well_formed if sid not in hostnames]
            if unknown:
                problems.append(f"unknown to DRS: {', '.join(unknown)}")
        if problems:
            raise PlanInvalid(problems)
        now = iso_z(self._clock())
        execution_id = self._new_id()
        try:
            execution, waves = self._store.create_execution(
                ExecutionRecord(
                    execution_id=execution_id,
                    name=request.name,
                    is_drill=request.is_drill,
                    wave_count=len(request.waves),
                    stop_on_partial=request.stop_on_partial,
                    paused_before=1 if request.waves[0].pause_before_wave else None,
                    version=0,
                    created_at=now,
                    updated_at=now,
                ),
                [
                    WaveRecord(
                        execution_id=execution_id,
                        wave_number=number,
                        name=wave.name,
                        is_drill=request.is_drill,
                        start_requested_at=now if number == 1 and not wave.pause_before_wave else None,
                        start_attempts=1 if number == 1 and not wave.pause_before_wave else 0,
                        pause_before_wave=wave.pause_before_wave,
                        servers=tuple(
                            ServerRecord(source_server_id=sid, hostname=hostnames[sid])
                            for sid in wave.source_server_ids
                        ),
                        version=0,
                        created_at=now,
                        updated_at=now,
                    )
                    for number, wave in enumerate(request.waves, start=1)
                ],
            )
        except TooLarge as error:
            raise PlanInvalid([f"plan too large to record at once: {error}"]) from error
        logger.info("execution created", extra={"executionId": execution_id, "waves": len(waves)})
        metrics_count("ExecutionsCreated")
        if execution.paused_before == 1:
            return execution_document(execution, waves)
        try:
            waves[0] = self._start(waves[0])
        except _Refused as refused:
            waves = self._abandon(waves, f"DRS refused StartRecovery: {refused}")
            document = execution_document(execution, waves)
            try:  # finish it now (FAILED); the sweep would otherwise
                document = self.advance(execution_id) or document
            except ReconcilerError:
                logger.warning(
                    "could not finish the refused execution yet", extra={"executionId": execution_id}
                )
            raise StartRejected(refused.code, refused.message, document) from refused
        return execution_document(execution, waves)

    def start_wave(self, wave: WaveRecord) -> WaveRecord:
        """Start a PENDING wave's DRS job exactly once; returns the wave as stored.

        The claim is a versioned write of `startRequestedAt` (and the attempt number): of any
        number of racing callers exactly one wins it, and only the winner calls StartRecovery.
        A claim younger than the start grace belongs to a caller that may still be running, so
        nobody else touches DRS. An older claim's caller is gone (the grace exceeds every
        function's timeout): DRS is asked for a job tagged with this wave first, and adopted if
        there is one; only with none is the wave claimed again and started, at most
        MAX_START_ATTEMPTS times, then FAILED. See docs/start-protocol.md."""
        current = self._store.get_wave(wave_key(wave.execution_id, wave.wave_number)) or wave
        if current.status is not WaveStatus.PENDING or current.job_id:
            return current
        now_moment = self._clock()
        if current.start_requested_at is not None:
            if claim_is_fresh(current, now_moment, self._start_grace):
                return current
            found = self._observer.find_started_job(
                current.execution_id, current.wave_number, current.start_requested_at
            )
            if found is not None:
                return self._record_job(
                    current, {"jobID": found.job_id, "creationDateTime": found.creation_time}
                )
            if current.start_attempts >= MAX_START_ATTEMPTS:
                return self._fail_start(
                    current,
                    f"no DRS job was started after {current.start_attempts} attempts "
                    f"(last requested at {current.start_requested_at}); start the recovery again",
                )
        now = iso_z(now_moment)
        try:
            current = self._store.write_wave(
                current.model_copy(
                    update={"start_requested_at": now, "start_attempts": current.start_attempts + 1}
                ),
                updated_at=now,
            )
        except VersionConflict:
            logger.info("another caller claimed the wave's start", extra=_wave_keys(current))
            return self._store.get_wave(wave_key(wave.execution_id, wave.wave_number)) or current
        try:
            return self._start(current)
        except _Refused as refused:
            return self._fail_start(current, f"DRS refused StartRecovery: {refused}")

    def _fail_start(self, wave: WaveRecord, reason: str) -> WaveRecord:
        now = iso_z(self._clock())
        failed = wave.model_copy(update={"status": WaveStatus.FAILED, "error": reason, "end_time": now})
        try:
            written = self._store.write_wave(failed, updated_at=now)
        except VersionConflict:
            return self._store.get_wave(wave_key(wave.execution_id, wave.wave_number)) or wave
        self._flush([written])
        return written

    # ------------------------------------------------------------------ the lifecycle

    def advance(self, execution_id: str) -> ExecutionDocument | None:
        """Take the execution's next step (start, pause, cancel the rest, finish), if any.

        Idempotent and safe to race: every step is a versioned write, and a caller that loses a
        race re-reads and decides again. Called after a wave turns terminal (reconcile), by the
        sweep for every unfinished execution, and after resume and cancel."""
        for _attempt in range(6):
            found = self._store.get_execution(execution_id)
            if found is None:
                return None
            execution, waves = found
            step = plan_next(execution, waves, now=self._clock(), start_grace=self._start_grace)
            keys = {"executionId": execution_id, "waveNumber": step.wave_number, "action": step.action.value}
            now = iso_z(self._clock())
            try:
                if step.action is Action.NONE:
                    orphaned = outbox_is_orphaned(execution.updated_at, self._clock())
                    if self._publisher is not None and execution.outbox and orphaned:
                        execution = self._publisher.flush_execution(execution)
                    return execution_document(execution, waves)
                logger.info("execution step", extra={**keys, "reason": step.reason})
                if step.action is Action.START:
                    wave = next(w for w in waves if w.wave_number == step.wave_number)
                    self.start_wave(wave)
                    if execution.paused_before is not None:
                        self._store.write_execution(
                            execution.model_copy(update={"paused_before": None}), updated_at=now
                        )
                elif step.action is Action.PAUSE:
                    self._store.write_execution(
                        execution.model_copy(update={"paused_before": step.wave_number}), updated_at=now
                    )
                    metrics_count("ExecutionsPaused")
                elif step.action is Action.CANCEL_REST:
                    assert step.wave_number is not None
                    if self._adopted_instead(waves, step.wave_number):
                        continue
                    self._flush(
                        self._store.write_waves(
                            _cancelled(
                                waves, step.wave_number, step.reason or "cancelled", now, stale_claim=True
                            ),
                            updated_at=now,
                        )
                    )
                elif step.action is Action.FINISH:
                    return self._finish(execution, waves, now)
            except VersionConflict:
                continue
        return None

    def _flush(self, waves: Sequence[WaveRecord]) -> None:
        """Publish the events of waves this caller just ended (the sweep retries what fails)."""
        if self._publisher is not None:
            for wave in waves:
                if wave.outbox:
                    self._publisher.flush_wave(wave)

    def _adopted_instead(self, waves: list[WaveRecord], number: int) -> bool:
        """Before cancelling a wave whose start was claimed long ago, adopt the job DRS may hold
        for it: a job that runs is reconciled to its end, never hidden behind CANCELLED."""
        wave = next(w for w in waves if w.wave_number == number)
        if wave.start_requested_at is None:
            return False
        found = self._observer.find_started_job(wave.execution_id, number, wave.start_requested_at)
        if found is None:
            return False
        self._record_job(wave, {"jobID": found.job_id, "creationDateTime": found.creation_time})
        return True

    def _finish(self, execution: ExecutionRecord, waves: list[WaveRecord], now: str) -> ExecutionDocument:
        """Stamp the final status, end time, TTL and Execution Completed event on the execution
        and the TTL on every wave, in one transaction; then publish."""
        status = derive_status(execution, waves)
        end_time = max([now, *(w.end_time for w in waves if w.end_time)])
        expires = expiry(end_time, self._retention)
        finished = execution.model_copy(
            update={
                "status": status,
                "end_time": end_time,
                "paused_before": None,
                "expires_at": expires,
                "outbox": (*execution.outbox, execution_completed_event(execution, waves, status, end_time)),
            }
        )
        stamped = [w.model_copy(update={"expires_at": expires}) for w in waves if w.expires_at != expires]
        written, stored = self._store.write_together(finished, stamped, updated_at=now)
        logger.info(
            "execution finished", extra={"executionId": execution.execution_id, "status": status.value}
        )
        metrics_count("ExecutionsFinished")
        assert written is not None
        if self._publisher is not None:
            written = self._publisher.flush_execution(written)
        fresh = {w.wave_number: w for w in stored}
        return execution_document(written, [fresh.get(w.wave_number, w) for w in waves])

    # ------------------------------------------------------------------ operator controls

    def resume(self, execution_id: str) -> ExecutionDocument:
        """PAUSED -> RUNNING: release the wave it waits before, then start it."""
        for _attempt in range(3):
            execution, waves = self._require(execution_id)
            status = derive_status(execution, waves)
            if status.value != "PAUSED" or execution.paused_before is None:
                raise WrongState(
                    f"execution {execution_id} is {status.value}; only a PAUSED execution can be resumed"
                )
            released = execution.model_copy(
                update={"paused_before": None, "resumed": (*execution.resumed, execution.paused_before)}
            )
            try:
                self._store.write_execution(released, updated_at=iso_z(self._clock()))
            except VersionConflict:
                continue
            logger.info("execution resumed", extra={"executionId": execution_id})
            return self.advance(execution_id) or execution_document(released, waves)
        raise WrongState(f"execution {execution_id} changed while resuming; try again")

    def cancel(self, execution_id: str) -> ExecutionDocument:
        """Stop further waves: those never started become CANCELLED at once (one transaction with
        the execution); a running wave's DRS job goes on and its wave is reconciled to its end."""
        for _attempt in range(3):
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
            cancelled = execution.model_copy(update={"cancel_requested_at": now, "paused_before": None})
            unstarted = [w for w in waves if w.status is WaveStatus.PENDING and w.start_requested_at is None]
            first = min((w.wave_number for w in unstarted), default=None)
            doomed = _cancelled(unstarted, first, "cancelled by an operator", now) if first else []
            try:
                _, ended = self._store.write_together(cancelled, doomed, updated_at=now)
            except VersionConflict:
                continue
            self._flush(ended)
            logger.info("execution cancelled", extra={"executionId": execution_id, "waves": len(doomed)})
            metrics_count("ExecutionsCancelled")
            return self.advance(execution_id) or execution_document(cancelled, waves)
        raise WrongState(f"execution {execution_id} changed while cancelling; try again")

    def _require(self, execution_id: str) -> tuple[ExecutionRecord, list[WaveRecord]]:
        found = self._store.get_execution(execution_id)
        if found is None:
            raise NotFound(f"no execution {execution_id}")
        return found

    def _start(self, wave: WaveRecord) -> WaveRecord:
        """Call StartRecovery at most once per answer that could have started a job, then record
        the job. Returns the wave as stored: LAUNCHING with its job, or still PENDING with its
        start requested when DRS's answer was lost (the sweep then adopts the tagged job)."""
        keys = {"executionId": wave.execution_id, "waveNumber": wave.wave_number}
        job: dict[str, Any] | None = None
        for pause in (*THROTTLE_BACKOFF, None):
            try:
                job = self._drs_start.start_recovery(
                    sourceServers=[{"sourceServerID": s.source_server_id} for s in wave.servers],
                    isDrill=wave.is_drill,
                    tags=job_tags(wave.execution_id, wave.wave_number),
                )["job"]
                break
            except ClientError as error:
                code = client_error_code(error) or "Error"
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
                message = str(error.response.get("Error", {}).get("Message") or error)
                if code == "ThrottlingException" and pause is not None:
                    self._sleep(pause)  # refused outright: nothing started, safe to ask again
                    continue
                if status >= 500:
                    logger.warning("StartRecovery answer unknown; the sweep will adopt the job", extra=keys)
                    return wave
                raise _Refused(code, message) from error
            except (EndpointConnectionError, ConnectTimeoutError) as error:  # never reached DRS
                raise _Refused(UNREACHABLE, str(error)) from error
            except BotoCoreError:
                logger.warning("StartRecovery answer lost; the sweep will adopt the job", extra=keys)
                return wave
        if job is None:  # pragma: no cover - the loop either breaks with a job or returns/raises
            return wave
        logger.info("DRS job started", extra={**keys, "jobId": job["jobID"]})
        return self._record_job(wave, job)

    def _record_job(self, wave: WaveRecord, job: dict[str, Any]) -> WaveRecord:
        """Store the job id (LAUNCHING) with a versioned write, a few times. Never raises: the
        job exists, so whatever goes wrong here the wave stays PENDING with its start requested
        and the sweep adopts the job by its tags."""
        keys = {"executionId": wave.execution_id, "waveNumber": wave.wave_number, "jobId": job["jobID"]}
        for _attempt in range(3):
            now = iso_z(self._clock())
            started = wave.model_copy(
                update={
                    "job_id": job["jobID"],
                    "status": WaveStatus.LAUNCHING,
                    "start_time": normalize_time(job.get("creationDateTime")) or now,
                }
            )
            try:
                return self._store.write_wave(started, updated_at=now)
            except VersionConflict as conflict:
                try:
                    current = (
                        wave_from_item(conflict.current)
                        if conflict.current
                        else self._store.get_wave(wave_key(wave.execution_id, wave.wave_number))
                    )
                except ReconcilerError:
                    break
                if current is None:
                    break
                if current.job_id or current.status is not WaveStatus.PENDING:
                    if current.job_id != job["jobID"]:
                        logger.error("DRS job started but its wave moved on without it", extra=keys)
                        metrics_count("OrphanedJobs")
                    return current  # the sweep recorded it first (or the wave ended)
                wave = current
            except ReconcilerError:
                continue
        logger.error("DRS job started but not recorded; the sweep will adopt it", extra=keys)
        return wave

    def _abandon(self, waves: list[WaveRecord], reason: str) -> list[WaveRecord]:
        """Wave 1 FAILED with the reason and the others CANCELLED, in one transaction. If that
        fails, wave 1 keeps its requested start and the sweep ends it after the start grace."""
        now = iso_z(self._clock())
        ended = [
            wave.model_copy(
                update={"status": WaveStatus.FAILED, "error": reason, "end_time": now}
                if wave.wave_number == 1
                else {
                    "status": WaveStatus.CANCELLED,
                    "error": "not started: wave 1 could not start",
                    "end_time": now,
                }
            )
            for wave in waves
        ]
        try:
            result = self._store.write_waves(ended, updated_at=now)
        except ReconcilerError as error:
            extra = {"executionId": waves[0].execution_id, "error": str(error)}
            logger.error("could not record the refused start", extra=extra)
            return waves
        logger.warning("execution abandoned", extra={"executionId": waves[0].execution_id, "reason": reason})
        self._flush(result)
        return result

    def _hostnames(self, source_ids: Sequence[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        paginator = self._drs.get_paginator("describe_source_servers")
        try:
            for batch in chunks(source_ids, DRS_FILTER_MAX):
                for page in paginator.paginate(
                    filters={"sourceServerIDs": batch}, PaginationConfig=self._page
                ):
                    for item in page.get("items", []):
                        hints = item.get("sourceProperties", {}).get("identificationHints", {})
                        found[item["sourceServerID"]] = hints.get("hostname")
        except (ClientError, BotoCoreError) as error:
            raise classify_aws_error(error, "DescribeSourceServers") from error
        return found


def _cancelled(
    waves: Sequence[WaveRecord], first: int, reason: str, now: str, *, stale_claim: bool = False
) -> list[WaveRecord]:
    """Waves from `first` on that never started, CANCELLED with the reason. With `stale_claim`,
    wave `first` goes too even though its start was claimed (the caller found no job for it)."""
    return [
        w.model_copy(update={"status": WaveStatus.CANCELLED, "error": reason, "end_time": now})
        for w in waves
        if w.wave_number >= first
        and w.status is WaveStatus.PENDING
        and w.job_id is None
        and (w.start_requested_at is None or (stale_claim and w.wave_number == first))
    ]


def _wave_keys(wave: WaveRecord) -> dict[str, object]:
    return {"executionId": wave.execution_id, "waveNumber": wave.wave_number, "jobId": wave.job_id}
