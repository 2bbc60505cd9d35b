"""The RTO report: `recoveredAt` stamped by the pure core in the write that completes a server,
the arithmetic of `rtoSeconds` / `rtoMet` per server, wave and execution, and the CSV and Markdown
renderings. No AWS, no mocks."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core import complete_before_green_violations, next_state
from reconciler.documents import execution_document
from reconciler.observation import ObservedServer
from reconciler.report import (
    CSV_COLUMNS,
    ReportFormat,
    ReportRefused,
    Rto,
    elapsed,
    execution_rto,
    parse_report_query,
    render,
    server_rto,
    verdict,
    wave_rto,
)
from schemas.api import CreateExecutionRequest
from schemas.records import (
    ExecutionRecord,
    ExecutionStatus,
    LaunchStatus,
    ServerRecord,
    WaveRecord,
    WaveStatus,
)
from schemas.times import iso_z, parse_time
from tests.unit.test_core import GRACE, SIDS, T0, launched, seen, wave

START = "2026-11-26T10:00:00.000Z"


def at(seconds: float) -> str:
    return iso_z(parse_time(START) + timedelta(seconds=seconds))


# ------------------------------------------------------------------ recoveredAt, in the core


def test_recovered_at_is_stamped_in_the_very_record_that_completes_the_wave() -> None:
    # Given a wave whose servers both launched and are visible in EC2 as the job completes
    moment = T0 + timedelta(minutes=6)
    observed = seen("COMPLETED", launched(SIDS[0], 1), launched(SIDS[1], 2), at=moment)
    # When it is reconciled
    desired = next_state(wave(), observed, ec2_grace=GRACE)
    # Then the one record that turns it COMPLETED carries each server's recoveredAt: the look's time
    assert desired.status is WaveStatus.COMPLETED
    assert [s.recovered_at for s in desired.servers] == [iso_z(moment)] * 2
    assert complete_before_green_violations(desired) == []


@pytest.mark.parametrize(
    "observed",
    [
        launched(SIDS[0], 1, visible=False),  # EC2 does not show the instance yet
        launched(SIDS[0], 1, ip=None),  # no private IP yet
        launched(SIDS[0], 1, instance_type=None),
        ObservedServer(SIDS[0], "IN_PROGRESS"),
        ObservedServer(SIDS[0], "FAILED"),
    ],
    ids=["invisible", "no-ip", "no-type", "in-progress", "failed"],
)
def test_no_recovered_at_without_launched_and_all_four_ec2_details(observed: ObservedServer) -> None:
    desired = next_state(wave(), seen("STARTED", observed), ec2_grace=GRACE)
    assert desired.servers[0].recovered_at is None


def test_recovered_at_is_the_first_complete_look_and_never_moves() -> None:
    # Given a server launched but invisible to EC2 at the first look
    first = next_state(wave(), seen("STARTED", launched(SIDS[0], 1, visible=False), at=T0), ec2_grace=GRACE)
    assert first.servers[0].recovered_at is None
    # When a later look sees its instance, then a later one again, then a stale one
    complete = T0 + timedelta(seconds=40)
    second = next_state(first, seen("STARTED", launched(SIDS[0], 1), at=complete), ec2_grace=GRACE)
    third = next_state(
        second, seen("STARTED", launched(SIDS[0], 1), at=complete + timedelta(minutes=1)), ec2_grace=GRACE
    )
    stale = next_state(third, seen("STARTED", launched(SIDS[0], 1, visible=False), at=T0), ec2_grace=GRACE)
    # Then it is the moment of the first complete look, kept by every later record
    assert second.servers[0].recovered_at == iso_z(complete)
    assert third == second  # nothing new: no write
    assert stale.servers[0].recovered_at == iso_z(complete)


def test_a_server_terminated_after_launch_keeps_or_gets_its_recovered_at() -> None:
    terminated = ObservedServer(SIDS[0], "TERMINATED", "i-r", f"i-{1:017x}", None, launched(SIDS[0], 1).ec2)
    desired = next_state(wave(), seen("STARTED", terminated), ec2_grace=GRACE)
    assert desired.servers[0].launch_status is LaunchStatus.TERMINATED
    assert desired.servers[0].recovered_at == iso_z(T0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["PENDING", "IN_PROGRESS", "LAUNCHED", "FAILED"]),
            st.booleans(),  # EC2 shows the instance
            st.integers(min_value=0, max_value=3600),  # when the look was taken (seconds after T0)
        ),
        min_size=1,
        max_size=8,
    )
)
def test_recovered_at_is_set_once_complete_and_never_changes(looks: list[tuple[str, bool, int]]) -> None:
    stored = wave(n=1)
    stamped: str | None = None
    for status, visible, offset in looks:
        moment = T0 + timedelta(seconds=offset)
        server = (
            launched(SIDS[0], 1, visible=visible) if status == "LAUNCHED" else ObservedServer(SIDS[0], status)
        )
        stored = next_state(stored, seen("STARTED", server, at=moment), ec2_grace=GRACE)
        record = stored.servers[0]
        complete = record.launch_status is LaunchStatus.LAUNCHED and record.has_ec2_details
        if stamped is None and complete:
            assert record.recovered_at == iso_z(moment)  # the look that completed it
            stamped = record.recovered_at
        assert record.recovered_at == stamped
        assert (record.recovered_at is not None) == complete


# ------------------------------------------------------------------ the arithmetic


@pytest.mark.parametrize(
    ("start", "end", "seconds"),
    [
        (START, None, None),
        (START, START, 0.0),
        (START, "2026-11-26T10:01:35.250Z", 95.25),
        (START, "2026-11-26T10:00:00.001+00:00", 0.001),
        (START, "2026-11-26T09:59:59.000Z", 0.0),  # a skewed clock never gives a negative time
        (START, "2026-11-27T10:00:00.000Z", 86400.0),
    ],
)
def test_elapsed(start: str, end: str | None, seconds: float | None) -> None:
    assert elapsed(start, end) == seconds


@pytest.mark.parametrize(
    ("seconds", "target", "recovered", "met"),
    [
        (10.0, None, True, None),  # no target: no verdict
        (None, None, False, None),
        (10.0, 60, True, True),
        (60.0, 60, True, True),  # at the target is within it
        (60.001, 60, True, False),
        (None, 60, True, None),  # recovered, time unknown (stored before recoveredAt existed)
        (None, 60, False, False),  # ended unrecovered
        (10.0, 60, False, False),  # a PARTIAL wave's fast servers do not make it met
        (None, 60, None, None),  # not over yet
        (10.0, 60, None, None),
    ],
)
def test_verdict(seconds: float | None, target: int | None, recovered: bool | None, met: bool | None) -> None:
    assert verdict(seconds, target, recovered=recovered) is met


def server(n: int, recovered: float | None, status: LaunchStatus = LaunchStatus.LAUNCHED) -> ServerRecord:
    return ServerRecord(
        source_server_id=SIDS[n],
        hostname=f"h{n}",
        launch_status=status,
        recovered_instance_id=f"i-{n:017x}" if recovered is not None else None,
        instance_type="m5.large" if recovered is not None else None,
        private_ip="10.0.0.1" if recovered is not None else None,
        launch_time=at(recovered - 5) if recovered is not None else None,
        recovered_at=at(recovered) if recovered is not None else None,
    )


def wave_of(
    status: WaveStatus, *servers: ServerRecord, number: int = 1, target: int | None = None
) -> WaveRecord:
    return WaveRecord(
        execution_id="e",
        wave_number=number,
        name=f"wave {number}",
        status=status,
        is_drill=True,
        job_id="drsjob-1" if status is not WaveStatus.PENDING else None,
        servers=servers,
        rto_target_seconds=target,
        version=1,
        created_at=START,
        updated_at=START,
    )


@pytest.mark.parametrize(
    ("status", "servers", "own", "expected"),
    [
        # COMPLETED: the latest server's time, against the wave's own target, else the execution's
        (WaveStatus.COMPLETED, [(30.0,), (75.5,)], None, Rto(75.5, 600, True)),
        (WaveStatus.COMPLETED, [(30.0,), (75.5,)], 60, Rto(75.5, 60, False)),
        (WaveStatus.COMPLETED, [(30.0,)], 30, Rto(30.0, 30, True)),
        # PARTIAL: the launched servers' latest time, never met (a server did not recover)
        (WaveStatus.PARTIAL, [(20.0,), (None, LaunchStatus.FAILED)], None, Rto(20.0, 600, False)),
        # FAILED, CANCELLED: no time, not met
        (WaveStatus.FAILED, [(None, LaunchStatus.FAILED)], None, Rto(None, 600, False)),
        (WaveStatus.CANCELLED, [(None, LaunchStatus.PENDING)], None, Rto(None, 600, False)),
        # still running (a server already recovered): no time yet, no verdict
        (WaveStatus.LAUNCHING, [(20.0,), (None, LaunchStatus.IN_PROGRESS)], None, Rto(None, 600, None)),
        (WaveStatus.PENDING, [(None, LaunchStatus.PENDING)], None, Rto(None, 600, None)),
        # COMPLETED before recoveredAt existed: time unknown, no verdict
        (WaveStatus.COMPLETED, [], None, Rto(None, 600, None)),
    ],
)
def test_wave_rto(
    status: WaveStatus, servers: list[tuple[object, ...]], own: int | None, expected: Rto
) -> None:
    records = [server(i, *spec) for i, spec in enumerate(servers)]  # type: ignore[arg-type]
    assert wave_rto(wave_of(status, *records, target=own), START, 600) == expected


def test_server_rto_in_a_running_and_an_ended_wave() -> None:
    assert server_rto(server(0, 42.0), START, 60, wave_over=False) == Rto(42.0, 60, True)
    assert server_rto(server(0, 61.0), START, 60, wave_over=True) == Rto(61.0, 60, False)
    waiting = server(0, None, LaunchStatus.IN_PROGRESS)
    assert server_rto(waiting, START, 60, wave_over=False) == Rto(None, 60, None)
    assert server_rto(waiting, START, 60, wave_over=True) == Rto(None, 60, False)
    assert server_rto(server(0, 42.0), START, None, wave_over=True) == Rto(42.0, None, None)


@pytest.mark.parametrize(
    ("status", "waves", "target", "expected"),
    [
        (ExecutionStatus.COMPLETED, [30.0, 95.25], 100, Rto(95.25, 100, True)),
        (ExecutionStatus.COMPLETED, [30.0, 95.25], 90, Rto(95.25, 90, False)),
        (ExecutionStatus.COMPLETED, [30.0, 95.25], None, Rto(95.25, None, None)),
        (ExecutionStatus.PARTIAL, [30.0, None], 100, Rto(30.0, 100, False)),
        (ExecutionStatus.FAILED, [None], 100, Rto(None, 100, False)),
        (ExecutionStatus.CANCELLED, [30.0, None], 100, Rto(30.0, 100, False)),
        (ExecutionStatus.RUNNING, [30.0, None], 100, Rto(None, 100, None)),
        (ExecutionStatus.PAUSED, [30.0, None], 100, Rto(None, 100, None)),
    ],
)
def test_execution_rto(
    status: ExecutionStatus, waves: list[float | None], target: int | None, expected: Rto
) -> None:
    figures = [Rto(seconds, None, None) for seconds in waves]
    assert execution_rto(status, START, target, figures) == expected


def execution(target: int | None = None, status: ExecutionStatus | None = None) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id="e",
        name="drill | <b>one</b>",
        is_drill=True,
        wave_count=2,
        rto_target_seconds=target,
        status=status,
        end_time=at(200) if status else None,
        version=2,
        created_at=START,
        updated_at=START,
    )


@settings(max_examples=150, deadline=None)
@given(
    waves=st.lists(
        st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=4),
        min_size=1,
        max_size=3,
    ),
    execution_target=st.none() | st.integers(min_value=60, max_value=604_800),
    wave_targets=st.lists(st.none() | st.integers(min_value=60, max_value=604_800), min_size=3, max_size=3),
)
def test_a_completed_execution_s_figures_are_the_latest_recoveries(
    waves: list[list[int]], execution_target: int | None, wave_targets: list[int | None]
) -> None:
    # Given a COMPLETED execution whose servers recovered at these milliseconds after its start
    records = [
        wave_of(
            WaveStatus.COMPLETED,
            *(server(i, ms / 1000) for i, ms in enumerate(times)),
            number=n,
            target=wave_targets[n - 1],
        )
        for n, times in enumerate(waves, start=1)
    ]
    document = execution_document(execution(execution_target, ExecutionStatus.COMPLETED), records)
    # Then each figure is the latest recovery under it, met exactly when within its target
    for times, shown, own in zip(waves, document.waves, wave_targets, strict=False):
        target = own if own is not None else execution_target
        assert shown.rto_seconds == max(times) / 1000
        assert shown.rto_target_seconds == target
        assert shown.rto_met is (None if target is None else max(times) / 1000 <= target)
        for ms, figure in zip(times, shown.servers, strict=True):
            assert (figure.rto_seconds, figure.rto_target_seconds) == (ms / 1000, target)
            assert figure.rto_met is (None if target is None else ms / 1000 <= target)
    latest = max(max(times) for times in waves) / 1000
    assert (document.rto_seconds, document.rto_target_seconds) == (latest, execution_target)
    assert document.rto_met is (None if execution_target is None else latest <= execution_target)


def test_the_document_of_a_running_execution_has_times_only_for_recovered_servers() -> None:
    records = [
        wave_of(WaveStatus.COMPLETED, server(0, 40.0), number=1, target=45),
        wave_of(WaveStatus.LAUNCHING, server(1, 90.0), server(2, None, LaunchStatus.IN_PROGRESS), number=2),
    ]
    document = execution_document(execution(120), records)
    one, two = document.waves
    assert document.status == "RUNNING"
    assert (document.rto_seconds, document.rto_target_seconds, document.rto_met) == (None, 120, None)
    assert (one.rto_seconds, one.rto_target_seconds, one.rto_met) == (40.0, 45, True)
    assert (two.rto_seconds, two.rto_target_seconds, two.rto_met) == (None, 120, None)
    assert [(s.recovered_at, s.rto_seconds, s.rto_met) for s in two.servers] == [
        (at(90), 90.0, True),
        (None, None, None),
    ]


# ------------------------------------------------------------------ the plan


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (60, True),
        (604_800, True),
        (59, False),
        (604_801, False),
        ("600", False),
        (600.0, False),
        (True, False),
    ],
)
def test_the_plan_s_target_is_a_strict_int_within_bounds(value: object, ok: bool) -> None:
    plan = {
        "name": "p",
        "isDrill": True,
        "rtoTargetSeconds": value,
        "waves": [{"name": "w", "sourceServerIds": [], "rtoTargetSeconds": value}],
    }
    if ok:
        request = CreateExecutionRequest.model_validate(plan)
        assert request.rto_target_seconds == value and request.waves[0].rto_target_seconds == value
    else:
        with pytest.raises(ValueError):
            CreateExecutionRequest.model_validate(plan)


# ------------------------------------------------------------------ the renderings


def finished() -> list[WaveRecord]:
    return [
        wave_of(WaveStatus.COMPLETED, server(0, 40.0), server(1, 62.5), number=1, target=60),
        wave_of(WaveStatus.PARTIAL, server(2, 90.0), server(3, None, LaunchStatus.FAILED), number=2),
    ]


def test_csv_has_a_header_then_a_row_per_server_per_wave_and_the_execution() -> None:
    document = execution_document(execution(120, ExecutionStatus.PARTIAL), finished())
    rows = list(csv.DictReader(io.StringIO(render(document, ReportFormat.CSV))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [(r["scope"], r["waveNumber"], r["sourceServerId"]) for r in rows] == [
        ("server", "1", SIDS[0]),
        ("server", "1", SIDS[1]),
        ("wave", "1", ""),
        ("server", "2", SIDS[2]),
        ("server", "2", SIDS[3]),
        ("wave", "2", ""),
        ("execution", "", ""),
    ]
    figures = [(r["rtoSeconds"], r["rtoTargetSeconds"], r["rtoMet"], r["launched"], r["total"]) for r in rows]
    assert figures == [
        ("40", "60", "true", "", ""),
        ("62.5", "60", "false", "", ""),
        ("62.5", "60", "false", "2", "2"),
        ("90", "120", "true", "", ""),
        ("", "120", "false", "", ""),
        ("90", "120", "false", "1", "2"),
        ("90", "120", "false", "3", "4"),
    ]
    assert rows[-1]["name"] == "drill | <b>one</b>" and rows[-1]["status"] == "PARTIAL"


def test_csv_keeps_a_formula_looking_name_as_text() -> None:
    record = execution().model_copy(update={"name": '=HYPERLINK("http://x")'})
    rows = list(csv.reader(io.StringIO(render(execution_document(record, finished()), ReportFormat.CSV))))
    assert rows[-1][CSV_COLUMNS.index("name")] == '\'=HYPERLINK("http://x")'


def test_markdown_has_every_wave_the_execution_row_and_every_server_escaped() -> None:
    document = execution_document(execution(120, ExecutionStatus.PARTIAL), finished())
    text = render(document, ReportFormat.MARKDOWN)
    lines = text.splitlines()
    assert lines[0] == "# RTO report: drill \\| \\<b\\>one\\</b\\>"
    assert "RTO achieved: 90 s; target: 120 s; not met." in text
    assert "| wave | 1 | wave 1 | — | — | COMPLETED | 2/2 | 62.5 | 60 | no |" in lines
    assert "| wave | 2 | wave 2 | — | — | PARTIAL | 1/2 | 90 | 120 | no |" in lines
    assert (
        "| execution | all | drill \\| \\<b\\>one\\</b\\> | — | — | PARTIAL | 3/4 | 90 | 120 | no |" in lines
    )
    servers = [line for line in lines if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(servers) == 4
    assert all(line.count(" | ") == 11 for line in servers)  # twelve cells: no name breaks a row


@pytest.mark.parametrize(
    ("query", "chosen", "problems"),
    [
        (None, ReportFormat.MARKDOWN, None),
        ({}, ReportFormat.MARKDOWN, None),
        ({"format": "csv"}, ReportFormat.CSV, None),
        ({"format": "markdown"}, ReportFormat.MARKDOWN, None),
        ({"format": "json"}, None, ["format: must be one of csv, markdown"]),
        ({"format": "CSV"}, None, ["format: must be one of csv, markdown"]),
        ({"format": "csv,markdown"}, None, ["format: must be one of csv, markdown"]),
        ({"fromat": "csv"}, None, ["fromat: unknown parameter (only format)"]),
    ],
)
def test_the_report_query(
    query: dict[str, str] | None, chosen: ReportFormat | None, problems: list[str] | None
) -> None:
    if problems is None:
        assert parse_report_query(query) is chosen
    else:
        with pytest.raises(ReportRefused) as refused:
            parse_report_query(query)
        assert refused.value.problems == problems
