"""Start an execution: validate the plan, record it, start wave 1's DRS job, record the job.

Order matters for crash safety. The execution and its waves are written first, in one
transaction, with wave 1 marked `startRequestedAt` (which puts it on the sweep's worklist). Only
then is `StartRecovery` called, once: it is not idempotent, so its client never retries, and we
repeat it only after a ThrottlingException, which proves nothing started. The job carries tags
naming the execution and wave. If DRS's answer is lost (timeout, 5xx) or the job id cannot be
recorded, the wave stays PENDING with its start requested, and the sweep adopts the tagged job
(`core.resolve_start`) or, finding none after a grace period, ends the wave FAILED. An invalid
plan writes nothing and starts nothing. A start DRS refuses marks the wave FAILED with the reason
and cancels the waves behind it, so nothing is left looking RUNNING with nothing running.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError
from pydantic import TypeAdapter, ValidationError

from schemas.api import SOURCE_SERVER_ID, CreateExecutionRequest, ExecutionDocument, WavePlan
from schemas.records import ExecutionRecord, ServerRecord, WaveRecord, WaveStatus
from schemas.times import iso_z, normalize_time

from .documents import execution_document
from .errors import (
    PermanentError,
    ReconcilerError,
    VersionConflict,
    classify_aws_error,
    client_error_code,
)
from .observability import logger, metrics_count
from .observe import DRS_FILTER_MAX, DrsObserver, chunks, job_tags
from .store import TooLarge, WaveStore, wave_from_item, wave_key

# Pauses between StartRecovery attempts that DRS refused with ThrottlingException (seconds).
THROTTLE_BACKOFF = (0.2, 0.6)
LOOKUP_WHEN_INVALID = 1000
UNREACHABLE = "DrsUnreachable"
# An execution is created in one transaction (at most 100 items, 4 MB): 50 waves plus the
# execution item keeps far inside both, even with 200-server waves.
MAX_WAVES = 50
_WAVES = TypeAdapter(list[WavePlan])


class PlanInvalid(PermanentError):
    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class StartRejected(ReconcilerError):
    """DRS refused to start a wave's job; the execution was recorded with the wave FAILED."""

    def __init__(self, code: str, message: str, document: ExecutionDocument) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.document = document


def plan_problems(request: CreateExecutionRequest, max_servers_per_wave: int) -> list[str]:
    """Every semantic problem of a plan at once (shape and types were checked by the model)."""
    problems: list[str] = []
    if not 1 <= len(request.waves) <= MAX_WAVES:
        problems.append(f"waves: needs 1 to {MAX_WAVES} waves, got {len(request.waves)}")
    first_wave: dict[str, int] = {}
    for number, wave in enumerate(request.waves, start=1):
        where = f"waves[{number - 1}] ({wave.name!r})"
        count = len(wave.source_server_ids)
        if not 1 <= count <= max_servers_per_wave:
            problems.append(f"{where}: needs 1 to {max_servers_per_wave} source servers, got {count}")
        for sid in wave.source_server_ids:
            if not SOURCE_SERVER_ID.fullmatch(sid):
                problems.append(
                    f"{where}: {sid!r} is not a DRS source server id (s- and 17 letters or digits)"
                )
            elif sid in first_wave:
                other = first_wave[sid]
                detail = "twice in this wave" if other == number else f"also in wave {other}"
                problems.append(f"{where}: {sid} is {detail}")
            else:
                first_wave[sid] = number
    return problems


def parse_plan(body: object, max_servers_per_wave: int) -> CreateExecutionRequest:
    """A request body as a plan, or PlanInvalid listing every problem found: shape and type
    errors, plus the meaning of the waves whenever the waves themselves have the right shape."""
    try:
        request = CreateExecutionRequest.model_validate(body)
    except ValidationError as error:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors()]
        waves = body.get("waves") if isinstance(body, dict) else None
        try:
            plans = _WAVES.validate_python(waves)
        except ValidationError:
            plans = None
        if plans is not None:
            shell = CreateExecutionRequest.model_construct(name="", is_drill=False, waves=plans)
            problems += [p for p in plan_problems(shell, max_servers_per_wave) if p not in problems]
        raise PlanInvalid(problems) from error
    return request


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
    ) -> None:
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
                        start_requested_at=now if number == 1 else None,
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
        try:
            waves[0] = self._start(waves[0])
        except _Refused as refused:
            waves = self._abandon(waves, f"DRS refused StartRecovery: {refused}")
            raise StartRejected(
                refused.code, refused.message, execution_document(execution, waves)
            ) from refused
        return execution_document(execution, waves)

    def start_wave(self, wave: WaveRecord) -> WaveRecord:
        """Start a PENDING wave's DRS job: record that the start is requested (so the sweep can
        find a job whose answer gets lost), start it, record the job id. Returns the stored wave.

        A wave whose start was already requested is first looked up by its tags: a job DRS holds
        for it is adopted, never started twice (even if that job has finished since)."""
        current = self._store.get_wave(wave_key(wave.execution_id, wave.wave_number)) or wave
        if current.status is not WaveStatus.PENDING or current.job_id:
            raise PermanentError(f"wave {current.wave_number} is {current.status.value}, not startable")
        if current.start_requested_at is not None:
            found = self._observer.find_started_job(
                current.execution_id, current.wave_number, current.start_requested_at
            )
            if found is not None:
                return self._record_job(
                    current, {"jobID": found.job_id, "creationDateTime": found.creation_time}
                )
        else:
            now = iso_z(self._clock())
            current = self._store.write_wave(
                current.model_copy(update={"start_requested_at": now}), updated_at=now
            )
        try:
            return self._start(current)
        except _Refused as refused:
            reason = f"DRS refused StartRecovery: {refused}"
            now = iso_z(self._clock())
            failed = current.model_copy(
                update={"status": WaveStatus.FAILED, "error": reason, "end_time": now}
            )
            return self._store.write_wave(failed, updated_at=now)

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
