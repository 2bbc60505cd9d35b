"""Build the execution document the API serves, and its ETag, from stored records only.

The read path never calls DRS or EC2 and never writes: everything shown here was written by the
reconciler, wave by wave, in single-item writes that already satisfy I2. The execution's status
and `updatedAt` are derived from the waves at read time, so they cannot drift from them. The
ETag is a hash of the item versions: any accepted write changes it, nothing else does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from schemas.api import ExecutionDocument, ServerDocument, WaveDocument
from schemas.records import ExecutionRecord, WaveRecord

from .cleanup_rules import execution_cleanup_status
from .lifecycle import derive_status
from .report import Rto, execution_rto, server_rto, wave_rto, wave_target


class StoreReader(Protocol):
    def get_execution(self, execution_id: str) -> tuple[ExecutionRecord, list[WaveRecord]] | None: ...


def execution_document(execution: ExecutionRecord, waves: Sequence[WaveRecord]) -> ExecutionDocument:
    """The API document: the records' own fields (the models share their names), plus the
    execution's status (from its waves and controls) and `updatedAt` derived from its waves, and
    the RTO figures of every server, wave and the execution (reconciler/report.py)."""
    status = derive_status(execution, list(waves))
    start = execution.created_at
    documents = [_wave_document(w, start, execution.rto_target_seconds) for w in waves]
    figure = execution_rto(
        status, start, execution.rto_target_seconds, [Rto(w.rto_seconds, None, None) for w in documents]
    )
    return ExecutionDocument(
        execution_id=execution.execution_id,
        name=execution.name,
        is_drill=execution.is_drill,
        status=status.value,
        stop_on_partial=execution.stop_on_partial,
        paused_before_wave=execution.paused_before,
        cancel_requested_at=execution.cancel_requested_at,
        end_time=execution.end_time,
        created_at=execution.created_at,
        updated_at=max([execution.updated_at, *(w.updated_at for w in waves)]),
        rto_seconds=figure.seconds,
        rto_target_seconds=figure.target,
        rto_met=figure.met,
        cleanup_status=execution_cleanup_status(waves),
        waves=documents,
    )


def _wave_document(wave: WaveRecord, start: str, execution_target: int | None) -> WaveDocument:
    figure = wave_rto(wave, start, execution_target)
    target = wave_target(wave, execution_target)
    servers = []
    for server in wave.servers:
        own = server_rto(server, start, target, wave.is_terminal)
        servers.append(
            ServerDocument.model_validate(
                {
                    **server.model_dump(mode="json"),
                    "rto_seconds": own.seconds,
                    "rto_target_seconds": own.target,
                    "rto_met": own.met,
                }
            )
        )
    return WaveDocument.model_validate(
        {
            **wave.model_dump(mode="json"),
            "servers": servers,
            "rto_seconds": figure.seconds,
            "rto_target_seconds": figure.target,
            "rto_met": figure.met,
        }
    )


def etag(execution: ExecutionRecord, waves: Sequence[WaveRecord]) -> str:
    versions = ",".join([f"e{execution.version}", *(f"w{w.wave_number}.{w.version}" for w in waves)])
    digest = hashlib.sha256(f"{execution.execution_id}|{versions}".encode()).hexdigest()[:20]
    return f'"{digest}"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match header against our tag."""
    if not if_none_match:
        return False
    candidates = [c.strip() for c in if_none_match.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == tag for c in candidates)


def read_execution(store: StoreReader, execution_id: str) -> tuple[ExecutionDocument, str] | None:
    """The document and its ETag from one strongly consistent Query; None when unknown."""
    found = store.get_execution(execution_id)
    if found is None:
        return None
    execution, waves = found
    return execution_document(execution, waves), etag(execution, waves)
