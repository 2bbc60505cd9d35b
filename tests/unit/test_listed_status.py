"""The status an execution is listed under (GET /executions) comes from its own item alone."""

from __future__ import annotations

import pytest

from reconciler.lifecycle import listed_status
from schemas.records import ExecutionRecord, ExecutionStatus

NOW = "2026-12-05T10:00:00.000Z"


def _execution(**fields: object) -> ExecutionRecord:
    base = {"execution_id": "e", "name": "n", "is_drill": True, "wave_count": 2, "version": 1}
    return ExecutionRecord.model_validate({**base, "created_at": NOW, "updated_at": NOW, **fields})


@pytest.mark.parametrize(
    ("fields", "listed"),
    [
        ({}, ExecutionStatus.RUNNING),
        ({"paused_before": 2}, ExecutionStatus.PAUSED),
        ({"paused_before": 2, "cancel_requested_at": NOW}, ExecutionStatus.RUNNING),  # cancelling
        ({"cancel_requested_at": NOW}, ExecutionStatus.RUNNING),
        ({"status": ExecutionStatus.COMPLETED, "end_time": NOW}, ExecutionStatus.COMPLETED),
        (
            {"status": ExecutionStatus.CANCELLED, "paused_before": 2, "end_time": NOW},
            ExecutionStatus.CANCELLED,
        ),
        ({"status": ExecutionStatus.FAILED, "end_time": NOW}, ExecutionStatus.FAILED),
        # a stored status that is not a finished one is not trusted: the item is listed by its controls
        ({"status": ExecutionStatus.PAUSED}, ExecutionStatus.RUNNING),
        ({"status": ExecutionStatus.RUNNING, "paused_before": 1}, ExecutionStatus.PAUSED),
    ],
)
def test_an_execution_is_listed_by_its_final_status_else_its_controls(
    fields: dict[str, object], listed: ExecutionStatus
) -> None:
    assert listed_status(_execution(**fields)) is listed
