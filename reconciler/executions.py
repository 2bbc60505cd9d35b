"""Start an execution: validate the plan, record it, start wave 1's DRS job, record the job.

Order matters for crash safety. The execution and its waves are written first (one
transaction); only then is `StartRecovery` called, with tags naming the execution and wave so a
start that crashed before its job id was recorded can be found again (the lifecycle issue builds
the recovery on these tags); then the job id is recorded with a versioned write. An invalid plan
writes nothing and starts nothing. A start DRS refuses marks the wave FAILED with the reason and
cancels the waves behind it, so nothing is left looking RUNNING with nothing running.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from schemas.api import SOURCE_SERVER_ID, CreateExecutionRequest, ExecutionDocument
from schemas.records import ExecutionRecord, ServerRecord, WaveRecord, WaveStatus
from schemas.times import iso_z, normalize_time

from .documents import execution_document
from .errors import PermanentError, ReconcilerError, classify_aws_error, client_error_code
from .observability import MetricUnit, logger, metrics
from .observe import DRS_FILTER_MAX, chunks
from .store import WaveStore

TAG_EXECUTION = "drs-reconciler:executionId"
TAG_WAVE = "drs-reconciler:waveNumber"
# An execution is created in one transaction (at most 100 items, 4 MB): 50 waves plus the
# execution item keeps far inside both, even with 200-server waves.
MAX_WAVES = 50


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


class Executions:
    def __init__(
        self,
        store: WaveStore,
        drs: Any,
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
        *,
        max_servers_per_wave: int,
        page_size: int | None = None,
    ) -> None:
        self._store = store
        self._drs = drs
        self._clock = clock
        self._new_id = new_id
        self._max = max_servers_per_wave
        self._page = {"PageSize": page_size} if page_size else {}

    def create(self, request: CreateExecutionRequest) -> ExecutionDocument:
        problems = plan_problems(request, self._max)
        if problems:
            raise PlanInvalid(problems)
        all_ids = [sid for wave in request.waves for sid in wave.source_server_ids]
        hostnames = self._hostnames(all_ids)
        unknown = [sid for sid in all_ids if sid not in hostnames]
        if unknown:
            raise PlanInvalid([f"unknown to DRS: {', '.join(unknown)}"])
        now = iso_z(self._clock())
        execution_id = self._new_id()
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
        logger.info("execution created", extra={"executionId": execution_id, "waves": len(waves)})
        metrics.add_metric(name="ExecutionsCreated", unit=MetricUnit.Count, value=1)
        try:
            waves[0] = self.start_wave(waves[0])
        except ClientError as error:
            code = client_error_code(error) or "Error"
            message = str(error.response.get("Error", {}).get("Message") or error)
            waves = self._abandon(waves, f"DRS refused StartRecovery: {code}: {message}")
            raise StartRejected(code, message, execution_document(execution, waves)) from error
        return execution_document(execution, waves)

    def start_wave(self, wave: WaveRecord) -> WaveRecord:
        """Start a PENDING wave's DRS job and record it (LAUNCHING) in one versioned write."""
        if wave.status is not WaveStatus.PENDING or wave.job_id:
            raise PermanentError(f"wave {wave.wave_number} is {wave.status.value}, not startable")
        reply = self._drs.start_recovery(
            sourceServers=[{"sourceServerID": s.source_server_id} for s in wave.servers],
            isDrill=wave.is_drill,
            tags={TAG_EXECUTION: wave.execution_id, TAG_WAVE: str(wave.wave_number)},
        )
        job = reply["job"]
        keys = {"executionId": wave.execution_id, "waveNumber": wave.wave_number, "jobId": job["jobID"]}
        logger.info("DRS job started", extra=keys)
        now = iso_z(self._clock())
        started = wave.model_copy(
            update={
                "job_id": job["jobID"],
                "status": WaveStatus.LAUNCHING,
                "start_time": normalize_time(job.get("creationDateTime")) or now,
            }
        )
        return self._store.write_wave(started, updated_at=now)

    def _abandon(self, waves: list[WaveRecord], reason: str) -> list[WaveRecord]:
        now = iso_z(self._clock())
        result = []
        for wave in waves:
            if wave.wave_number == 1:
                update: dict[str, object] = {"status": WaveStatus.FAILED, "error": reason, "end_time": now}
            else:
                update = {
                    "status": WaveStatus.CANCELLED,
                    "error": "not started: wave 1 could not start",
                    "end_time": now,
                }
            result.append(self._store.write_wave(wave.model_copy(update=update), updated_at=now))
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
