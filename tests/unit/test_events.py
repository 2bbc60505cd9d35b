"""Parsing DRS `Source Server Launch Result` events at the edge (no AWS at all).

The event only names a job to reconcile, so the parser must accept everything DRS really sends
(including `state` values it does not know) and refuse, with pydantic's ValidationError and
nothing else, anything that could make us reconcile the wrong job or misread drill vs recovery.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser import parse
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.events import LaunchResultEvent

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "drs-launch-result"
SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))
JOB_ID = re.compile(r"drsjob-[0-9a-zA-Z]{17}")


def sample(name: str = "succeeded") -> dict[str, Any]:
    """A fresh, mutable copy of one sample event."""
    loaded: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return copy.deepcopy(loaded)


def with_detail(**changes: Any) -> dict[str, Any]:
    """The `succeeded` sample with detail fields replaced (keys use `_` for `-`)."""
    event = sample()
    for key, value in changes.items():
        event["detail"][key.replace("_", "-")] = value
    return event


def without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return event


# -- the real samples ---------------------------------------------------------------------------


def test_there_are_four_samples() -> None:
    assert sorted(p.stem for p in SAMPLE_FILES) == ["drill", "failed", "recovery", "succeeded"]


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_each_sample_parses_to_its_job_drill_flag_and_source_server(path: Path) -> None:
    # Given a sample event exactly as DRS sends it
    raw = json.loads(path.read_text())

    # When it is parsed
    event = parse(event=raw, model=LaunchResultEvent)

    # Then the job id, the drill flag (as a real bool) and the server from the ARN come out of it
    assert event.detail.job_id == raw["detail"]["job-id"]
    assert JOB_ID.fullmatch(event.detail.job_id)
    assert event.detail.is_drill is (raw["detail"]["is-drill"] == "TRUE")
    assert event.detail.state == raw["detail"]["state"]
    [arn] = raw["resources"]
    assert event.source_server_id == arn.rsplit("/", 1)[1]
    assert event.source_server_id is not None and event.source_server_id.startswith("s-")
    assert event.source == "aws.drs"
    assert event.detail_type == "DRS Source Server Launch Result"


def test_drill_sample_is_a_drill_and_the_others_are_not() -> None:
    # Given/When the four samples are parsed
    parsed = {p.stem: parse(event=json.loads(p.read_text()), model=LaunchResultEvent) for p in SAMPLE_FILES}

    # Then only drill.json is a drill
    assert {name: e.detail.is_drill for name, e in parsed.items()} == {
        "drill": True,
        "failed": False,
        "recovery": False,
        "succeeded": False,
    }


# -- is-drill ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("TRUE", True),
        ("true", True),
        ("True", True),
        ("FALSE", False),
        ("false", False),
        (True, True),
        (False, False),
    ],
)
def test_is_drill_accepts_the_documented_strings_and_booleans(value: Any, expected: bool) -> None:
    # Given an event whose is-drill is a documented string or a JSON boolean
    event = with_detail(is_drill=value)

    # When it is parsed
    parsed = parse(event=event, model=LaunchResultEvent)

    # Then the flag is that bool
    assert parsed.detail.is_drill is expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("maybe", id="maybe"),
        pytest.param("", id="empty-string"),
        pytest.param("yes", id="yes"),
        pytest.param("1", id="string-1"),
        pytest.param("T", id="T"),
        pytest.param(None, id="null"),
        pytest.param([], id="list"),
        pytest.param({}, id="object"),
        pytest.param(2, id="int-2"),
        # Ambiguous for a DR tool (is 1 a drill, or a recovery of production?): must be refused.
        pytest.param(1, id="int-1"),
        pytest.param(0, id="int-0"),
        pytest.param(1.0, id="float-1.0"),
    ],
)
def test_is_drill_refuses_anything_ambiguous(value: Any) -> None:
    # Given an event whose is-drill is neither "TRUE"/"FALSE" (any case) nor a JSON boolean
    event = with_detail(is_drill=value)

    # When it is parsed / Then pydantic refuses it, naming the field
    with pytest.raises(ValidationError) as info:
        parse(event=event, model=LaunchResultEvent)
    assert any("is-drill" in map(str, error["loc"]) for error in info.value.errors()), info.value.errors()


# -- rejected envelopes and details ----------------------------------------------------------------


def _job_id_without_prefix() -> dict[str, Any]:
    return with_detail(job_id="1234567890abcdef01234")


REJECTED = [
    pytest.param(without(sample(), "detail", "job-id"), id="missing-job-id"),
    pytest.param(with_detail(job_id="drsjob-123"), id="job-id-too-short"),
    pytest.param(with_detail(job_id="drsjob-1234567890abcdef01"), id="job-id-too-long"),
    pytest.param(with_detail(job_id="drsjob-1234567890abcdef_"), id="job-id-underscore"),
    pytest.param(with_detail(job_id="DRSJOB-1234567890abcdef0"), id="job-id-uppercase-prefix"),
    pytest.param(with_detail(job_id="drsjob-1234567890abcdef0\n"), id="job-id-trailing-newline"),
    pytest.param(with_detail(job_id=" drsjob-1234567890abcdef0"), id="job-id-leading-space"),
    pytest.param(with_detail(job_id="drsjob-1234567890abcdéf0"), id="job-id-unicode"),
    pytest.param(_job_id_without_prefix(), id="job-id-no-prefix"),
    pytest.param(with_detail(job_id=12345678901234567), id="job-id-number"),
    pytest.param({**sample(), "source": "aws.ec2"}, id="source-ec2"),
    pytest.param({**sample(), "source": "custom.drs"}, id="source-custom"),
    pytest.param(
        {**sample(), "detail-type": "DRS Source Server Data Replication Stalled"}, id="other-detail-type"
    ),
    pytest.param(without(sample(), "account"), id="missing-account"),
    pytest.param(without(sample(), "detail"), id="missing-detail"),
    pytest.param({**sample(), "detail": "not an object"}, id="detail-string"),
    pytest.param({**sample(), "detail": ["job-id", "drsjob-1234567890abcdef0"]}, id="detail-list"),
    pytest.param({**sample(), "detail": None}, id="detail-null"),
    pytest.param(with_detail(state="X" * 65), id="state-65-chars"),
    pytest.param(with_detail(state=""), id="state-empty"),
    pytest.param(without(sample(), "detail", "state"), id="missing-state"),
    pytest.param(with_detail(state=7), id="state-number"),
]


@pytest.mark.parametrize("event", REJECTED)
def test_malformed_events_are_rejected_with_a_validation_error(event: dict[str, Any]) -> None:
    # Given an event with one defect / When it is parsed / Then pydantic refuses it
    with pytest.raises(ValidationError):
        parse(event=event, model=LaunchResultEvent)


def test_the_defects_above_are_the_only_reason_for_rejection() -> None:
    # Given the untouched sample the rejected cases were built from / Then it parses
    assert parse(event=sample(), model=LaunchResultEvent).detail.job_id == sample()["detail"]["job-id"]


# -- accepted oddities -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state", ["RECOVERY_LAUNCH_SOMETHING_NEW", "x", "S" * 64, "recovery_launch_succeeded"]
)
def test_unknown_state_is_accepted_because_the_event_is_only_a_hint(state: str) -> None:
    # Given an event with a state DRS does not document (up to 64 chars)
    event = with_detail(state=state)

    # When it is parsed / Then it parses and keeps the state as given
    parsed = parse(event=event, model=LaunchResultEvent)
    assert parsed.detail.state == state
    assert parsed.detail.job_id == event["detail"]["job-id"]


@pytest.mark.parametrize(
    "resources",
    [
        pytest.param([], id="empty"),
        pytest.param(["arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"], id="ec2-arn"),
        pytest.param(["arn:aws:drs:us-east-1:123456789012:job/drsjob-1234567890abcdef0"], id="drs-job-arn"),
        pytest.param(["arn:aws:drs:us-east-1:123456789012:source-server/s-123"], id="short-server-id"),
        pytest.param(["arn:aws:drs:us-east-1:1234:source-server/s-1234567890abcdef0"], id="bad-account"),
        pytest.param(["not an arn"], id="garbage"),
    ],
)
def test_no_source_server_arn_parses_with_source_server_id_none(resources: list[str]) -> None:
    # Given an event whose resources hold no DRS source-server ARN
    event = {**sample(), "resources": resources}

    # When it is parsed / Then it parses (the job id is what matters) and names no server
    parsed = parse(event=event, model=LaunchResultEvent)
    assert parsed.source_server_id is None
    assert parsed.detail.job_id == event["detail"]["job-id"]


def test_source_server_id_is_taken_from_the_first_source_server_arn() -> None:
    # Given a foreign ARN before the source-server ARN
    event = sample()
    sid = event["resources"][0].rsplit("/", 1)[1]
    event["resources"] = [
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0",
        *event["resources"],
    ]

    # When it is parsed / Then the source server is still found
    assert parse(event=event, model=LaunchResultEvent).source_server_id == sid


def test_extra_detail_fields_are_ignored() -> None:
    # Given DRS adds a field we do not know / Then the event still parses
    event = with_detail(new_field={"nested": [1, 2, 3]})
    assert parse(event=event, model=LaunchResultEvent).detail.job_id == event["detail"]["job-id"]


# -- property: nothing but ValidationError, whatever the detail -------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
DETAIL_KEYS = st.sampled_from(["state", "job-id", "is-drill", "job_id", "is_drill"]) | st.text(max_size=12)
PLAUSIBLE = {
    "state": st.sampled_from(["RECOVERY_LAUNCH_SUCCEEDED", "RECOVERY_LAUNCH_FAILED", ""]) | JSON_VALUES,
    "job-id": st.sampled_from(["drsjob-1234567890abcdef0", "drsjob-", "drsjob-1234567890abcdef0\n"])
    | JSON_VALUES,
    "is-drill": st.sampled_from(["TRUE", "FALSE", "true", " false ", "maybe", "", True, False, 0, 1])
    | JSON_VALUES,
}
DETAILS = st.fixed_dictionaries({}, optional=PLAUSIBLE).flatmap(
    lambda base: st.dictionaries(DETAIL_KEYS, JSON_VALUES, max_size=4).map(lambda extra: {**extra, **base})
)


@settings(max_examples=300, deadline=None, database=None)
@given(detail=DETAILS | JSON_VALUES)
def test_any_json_detail_parses_or_raises_only_validation_error(detail: Any) -> None:
    # Given the real envelope around an arbitrary JSON detail
    event = {**sample(), "detail": detail}

    # When it is parsed
    try:
        parsed = parse(event=event, model=LaunchResultEvent)
    except ValidationError:
        return  # refused the one allowed way

    # Then, when accepted, what we act on is exactly what was sent and well-formed
    assert isinstance(detail, dict)
    assert parsed.detail.job_id == detail["job-id"]
    assert JOB_ID.fullmatch(parsed.detail.job_id)
    assert isinstance(parsed.detail.is_drill, bool)
    assert isinstance(parsed.detail.state, str) and 1 <= len(parsed.detail.state) <= 64


# -- many accounts (docs/multi-account.md) -----------------------------------------------------


def test_a_forwarded_event_keeps_its_account_and_region_and_names_its_server() -> None:
    event = sample()
    event["account"], event["region"] = "333333333333", "eu-west-1"
    sid = "s-0123456789abcdefA"
    event["resources"] = [f"arn:aws:drs:eu-west-1:333333333333:source-server/{sid}"]
    parsed = parse(event=event, model=LaunchResultEvent)
    assert (parsed.account, parsed.region, parsed.source_server_id) == ("333333333333", "eu-west-1", sid)


@pytest.mark.parametrize(
    ("account", "region"),
    [("222222222222", "us-east-1"), ("123456789012", "eu-west-1")],
    ids=["another-account", "another-region"],
)
def test_a_source_server_arn_that_disagrees_with_the_envelope_is_rejected(account: str, region: str) -> None:
    event = sample()
    event["account"], event["region"] = "123456789012", "us-east-1"
    event["resources"] = [f"arn:aws:drs:{region}:{account}:source-server/s-0123456789abcdefA"]
    with pytest.raises(ValidationError, match="not in the envelope's account"):
        parse(event=event, model=LaunchResultEvent)
