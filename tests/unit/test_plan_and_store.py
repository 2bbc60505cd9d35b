"""Plan parsing lists every problem at once; the store maps DynamoDB's answers to domain errors."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from reconciler.errors import PermanentError, TemporaryError, VersionConflict
from reconciler.plans import PlanInvalid, parse_plan, plan_problems
from reconciler.store import TooLarge, WaveStore
from schemas.records import ExecutionRecord, ServerRecord, WaveRecord

GOOD = "s-AAAAAAAAAAAAAAAAA"


def test_shape_errors_and_wave_problems_are_listed_together():
    body = {"name": "", "isDrill": "yes", "waves": [{"name": "w", "sourceServerIds": ["s-123", GOOD, GOOD]}]}
    with pytest.raises(PlanInvalid) as raised:
        parse_plan(body, 100)
    problems = " | ".join(raised.value.problems)
    assert "name" in problems and "isDrill" in problems  # shape
    assert "'s-123' is not a DRS source server id" in problems  # meaning of the waves
    assert f"{GOOD} is twice in this wave" in problems


def test_a_valid_plan_parses():
    request = parse_plan(
        {"name": "n", "isDrill": False, "waves": [{"name": "w", "sourceServerIds": [GOOD]}]}, 100
    )
    assert request.waves[0].source_server_ids == [GOOD]


class CancellingClient:
    """A DynamoDB client whose TransactWriteItems is cancelled for the given reasons."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons

    def transact_write_items(self, **_: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                "CancellationReasons": [{"Code": code} for code in self.reasons],
            },
            "TransactWriteItems",
        )


def records(servers: int = 1, hostname: str = "h") -> tuple[ExecutionRecord, list[WaveRecord]]:
    now = "2026-11-26T10:00:00.000Z"
    execution = ExecutionRecord(
        execution_id="e", name="n", is_drill=True, wave_count=1, version=0, created_at=now, updated_at=now
    )
    wave = WaveRecord(
        execution_id="e",
        wave_number=1,
        name="w",
        is_drill=True,
        servers=tuple(
            ServerRecord(source_server_id=f"s-{i:017d}", hostname=hostname) for i in range(servers)
        ),
        version=0,
        created_at=now,
        updated_at=now,
    )
    return execution, [wave]


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (["None", "ConditionalCheckFailed"], VersionConflict),
        (["ThrottlingError", "None"], TemporaryError),
        (["TransactionConflict"], TemporaryError),
    ],
)
def test_a_cancelled_transaction_is_a_conflict_only_when_a_condition_failed(
    reasons: list[str], expected: type
):
    store = WaveStore(CancellingClient(reasons), "table")
    with pytest.raises(expected):
        store.create_execution(*records())


def test_an_item_over_the_guard_is_refused_before_any_request():
    store = WaveStore(CancellingClient([]), "table")
    execution, waves = records(servers=200, hostname="h" * 2000)
    with pytest.raises(TooLarge) as raised:
        store.create_execution(execution, waves)
    assert isinstance(raised.value, PermanentError)


def plan(*waves: dict[str, Any]) -> dict[str, Any]:
    return {"name": "n", "isDrill": True, "waves": [{"name": f"w{i}", **w} for i, w in enumerate(waves)]}


def test_a_wave_may_name_its_account_and_region():
    request = parse_plan(
        plan({"sourceServerIds": [GOOD], "accountId": "222222222222", "region": "eu-west-1"}), 100
    )
    assert (request.waves[0].account_id, request.waves[0].region) == ("222222222222", "eu-west-1")


@pytest.mark.parametrize(
    ("field", "value"),
    [("accountId", "2222"), ("accountId", 222222222222), ("region", "EU-WEST-1"), ("region", "mars")],
)
def test_a_malformed_target_is_a_listed_problem(field: str, value: Any):
    with pytest.raises(PlanInvalid) as raised:
        parse_plan(plan({"sourceServerIds": [GOOD], field: value}), 100)
    assert any(field in problem for problem in raised.value.problems), raised.value.problems


def test_one_server_id_in_two_accounts_is_two_servers_but_twice_in_one_account_is_refused():
    two_accounts = plan({"sourceServerIds": [GOOD]}, {"sourceServerIds": [GOOD], "accountId": "222222222222"})
    assert plan_problems(parse_plan(two_accounts, 100), 100, ("123456789012", "us-east-1")) == []
    # the hub's account named explicitly is still the hub's: the same server twice
    same = plan({"sourceServerIds": [GOOD]}, {"sourceServerIds": [GOOD], "accountId": "123456789012"})
    problems = plan_problems(parse_plan(same, 100), 100, ("123456789012", "us-east-1"))
    assert problems == [f"waves[1] ('w1'): {GOOD} is also in wave 1"]
