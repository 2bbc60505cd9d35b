"""One source of truth for benchmark figures: bench/results/latest.json.

bench/results/latest.md and the README's generated block (`<!-- bench:begin -->` ...
`<!-- bench:end -->`) must equal what bench/report.py renders from the committed latest.json, and
the rest of the README's Benchmarks section must hold no figure of its own: a hand-copied figure
is how the README once described a different run from the JSON. After a run, or after editing the
renderer, `python -m bench.report --readme` brings both back in line.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as bench_main
from bench import read, report, scale
from bench.section import Options, Section, Target
from local.drs_sim import DRS_LATENCY, EC2_LATENCY

FIX = "run `python -m bench.report --readme` to re-render them from bench/results/latest.json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return report.load(report.JSON_PATH)


def benchmarks_section(readme: str) -> str:
    start = readme.index("## Benchmarks")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else len(readme)]


# --- the generated files equal the render --------------------------------------------------------


def test_latest_md_is_the_render_of_latest_json(doc: dict[str, Any]) -> None:
    assert report.MD_PATH.read_text() == report.render_file(doc), f"latest.md is stale: {FIX}"


def test_readme_block_is_the_render_of_latest_json(doc: dict[str, Any]) -> None:
    readme = report.README_PATH.read_text()
    block = report.readme_block(readme)
    assert block is not None, f"README has no {report.BEGIN} ... {report.END} block"
    assert block in benchmarks_section(readme), "the generated block belongs in the Benchmarks section"
    assert block == report.render_block(doc), f"README's benchmark block is stale: {FIX}"


def test_check_mode_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main(["--check"]) == 0, capsys.readouterr().err


# --- no figure outside the generated block -------------------------------------------------------

# What looks like a measured figure: a number with a unit of time, size, rate or ratio, or any
# decimal. Counts without a unit ("1, 3 and 10 waves", "10,000 finished") are configuration and
# pass; they are not measured.
FIGURE = re.compile(
    r"\d[\d,]*(?:\.\d+)?\s*(?:(?:ms|s|sec|seconds?|min|minutes?|hours?|MB|KB|GB|WCU|RCU|x)\b|\N{MULTIPLICATION SIGN}|%)"
    r"|\d+\.\d+"
)

# Configuration facts the prose may state, each with the check that keeps it true (they are the
# stack's settings, not results of a run): the local DRS/EC2 latencies and the read poll interval.
ALLOWED: dict[str, Callable[[dict[str, Any]], bool]] = {
    # DescribeJobs latency on the local stack (local/drs_sim.py DRS_LATENCY)
    "100\N{EN DASH}300 ms": lambda _: DRS_LATENCY["DescribeJobs"] == (0.1, 0.3),
    # DescribeRecoveryInstances and EC2 DescribeInstances latency (DRS_LATENCY, EC2_LATENCY)
    "200\N{EN DASH}500 ms": lambda _: (
        DRS_LATENCY["DescribeRecoveryInstances"] == EC2_LATENCY["ec2:DescribeInstances"] == (0.2, 0.5)
    ),
    # how often the read section polls (bench/read.py's default sizing; read.setup.poll_interval_s)
    "every 0.2 s": lambda _: read.sizing(Options()).interval == 0.2,
    # what that run stands for: a page polling every 2 s, DRS waves of 10 to 30 minutes
    # (bench/read.py PAGE_POLL_S and WAVE_MINUTES; read.setup.stands_for)
    "every 2 s": lambda _: read.PAGE_POLL_S == 2,
    "10 to 30 minutes": lambda _: read.WAVE_MINUTES == (10, 30),
}


def prose_figures(section: str) -> list[str]:
    prose = report.BLOCK.sub("", section)
    for allowed in ALLOWED:
        prose = prose.replace(allowed, "")
    return [m.group(0) for m in FIGURE.finditer(prose)]


def test_readme_benchmarks_prose_holds_no_figures() -> None:
    found = prose_figures(benchmarks_section(report.README_PATH.read_text()))
    assert found == [], (
        f"figures typed into README's Benchmarks prose: {found}; let bench/report.py render them "
        "from latest.json (or, for a configuration fact, add it to ALLOWED with its check)"
    )


def test_allowed_configuration_facts_are_true(doc: dict[str, Any]) -> None:
    section = benchmarks_section(report.README_PATH.read_text())
    for fact, holds in ALLOWED.items():
        assert fact in section, f"ALLOWED lists {fact!r}, which the README no longer says: drop it"
        assert holds(doc), f"README says {fact!r}, which the stack's settings no longer match"


def test_the_figure_pattern_catches_hand_copied_figures() -> None:
    caught = "legacy/ours 38.8\N{MULTIPLICATION SIGN} missed; p50 17.1 ms, 62 KB, 9 minutes, 1.16 a bare Query, 5%, every 5 s"
    assert prose_figures(caught) == [
        "38.8\N{MULTIPLICATION SIGN}",
        "17.1 ms",
        "62 KB",
        "9 minutes",
        "1.16",
        "5%",
        "5 s",
    ]
    assert prose_figures("polled every 2 s over 1, 3 and 10 waves, DescribeJobs 100\N{EN DASH}300 ms") == []
    assert prose_figures(f"{report.BEGIN}\n56.2\N{MULTIPLICATION SIGN} 16.02 ms\n{report.END}") == []


# --- what the render says ------------------------------------------------------------------------


def test_every_section_has_a_headline() -> None:
    assert list(report.HEADLINES) == list(bench_main.SECTIONS)


def test_render_holds_metadata_every_target_and_every_headline(doc: dict[str, Any]) -> None:
    text = report.render(doc)
    meta = doc["meta"]
    for value in (meta["when"], meta["machine"], meta["python"], meta["scale"], str(meta["repeat"])):
        assert value in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for target in doc["targets"]:
        assert any(target["name"] in row and target["measured"] in row for row in rows), target["name"]
    for name in report.HEADLINES:
        assert any(row.startswith(f"| {name} | ") for row in rows), name
    assert "Partial run" not in text
    assert f"{sum(t['met'] for t in doc['targets'])} of {len(doc['targets'])} met" in text


def test_a_changed_figure_changes_the_render(doc: dict[str, Any]) -> None:
    changed = copy.deepcopy(doc)
    changed["read"]["ratios"]["legacy_over_ours_p50"] = 9876.5
    assert "9,876.5\N{MULTIPLICATION SIGN}" in report.render(changed)
    assert report.render(changed) != report.render(doc)


def test_a_missed_target_is_said_missed(doc: dict[str, Any]) -> None:
    changed = copy.deepcopy(doc)
    index = next(i for i, t in enumerate(doc["targets"]) if t["met"])  # a met target, missed now
    changed["targets"][index] = {**changed["targets"][index], "measured": "38.8x", "met": False}
    text = report.render(changed)
    met = sum(t["met"] for t in doc["targets"])
    assert f"{met - 1} of {len(doc['targets'])} met" in text
    assert "| 38.8x | **MISSED** |" in text
    assert f"Missed: **{doc['targets'][index]['name']}** measured 38.8x" in text


def test_a_partial_run_says_so(doc: dict[str, Any]) -> None:
    partial = {
        "meta": doc["meta"],
        "sweep": doc["sweep"],
        "targets": [t for t in doc["targets"] if t["name"].startswith("sweep")],
    }
    text = report.render(partial)
    assert "**Partial run**: only sweep ran" in text
    assert "| read | not run in this run | |" in text
    assert "| sweep | 10, 100, 1,000 waves in flight" in text


def test_the_readme_block_is_replaced_in_place(doc: dict[str, Any]) -> None:
    readme = f"before\n{report.BEGIN}\nhand-typed 38.8\N{MULTIPLICATION SIGN}\n{report.END}\nafter\n"
    updated = report.with_block(readme, doc)
    assert updated.startswith("before\n") and updated.endswith("\nafter\n")
    assert "hand-typed" not in updated
    assert report.with_block(updated, doc) == updated
    with pytest.raises(ValueError, match="no"):
        report.with_block("no markers here", doc)


# --- the commands --------------------------------------------------------------------------------


def test_report_cli_renders_latest_md_without_running_anything(doc: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "latest.json"
    source.write_text(json.dumps(doc))
    assert report.main(["--json", str(source)]) == 0
    assert (tmp_path / "latest.md").read_text() == report.render_file(doc)


def test_make_bench_writes_latest_md_next_to_the_json(
    doc: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m bench --only sweep --out X.json` writes X.md from X.json (sections faked: no run)."""
    figures = {k: v for k, v in doc["sweep"].items() if k != "seconds"}
    targets = [Target(**t) for t in doc["targets"] if t["name"].startswith("sweep")]
    fake = Section("sweep", "sweep", figures=figures, targets=targets, seconds=doc["sweep"]["seconds"])
    monkeypatch.setattr(bench_main, "run_sections", lambda names, options: [fake])
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    readme_before = report.README_PATH.read_text()
    interval = sys.getswitchinterval()
    out = tmp_path / "latest.json"
    try:
        assert bench_main.main(["--only", "sweep", "--out", str(out)]) == 0
    finally:
        sys.setswitchinterval(interval)
    md = (tmp_path / "latest.md").read_text()
    assert md == report.render_file(report.load(out))
    assert "**Partial run**: only sweep ran" in md
    assert report.README_PATH.read_text() == readme_before, "only the default latest.json rewrites README"


# --- gated read figures: min, median and max over runs -------------------------------------------


def _with_gated_read(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with synthetic gated read figures and per-class summaries (no run needed)."""
    changed = copy.deepcopy(doc)
    f = changed["read"]
    changed["runs"] = f["runs"] = 3
    f["steady_ratio"] = {
        n: {"min": 11.0 + i, "median": 14.5 + i, "max": 20.0 + i, "runs": [11.0 + i, 14.5 + i, 20.0 + i]}
        for i, n in enumerate(f["ours"]["by_waves"])
    }
    f["ours_over_bare"] = {"min": 1.02, "median": 1.07, "max": 1.31, "runs": [1.07, 1.02, 1.31], "waves": 10}
    f["ours"]["latency_runs"] = {
        "waves": 10,
        "p50_ms": {"min": 9.5, "median": 10.25, "max": 12.0, "runs": [9.5, 10.25, 12.0]},
        "p99_ms": {"min": 25.0, "median": 41.5, "max": 88.0, "runs": [25.0, 41.5, 88.0]},
    }
    for kind, (steady, enriching) in {"ours": (10.5, 17.25), "legacy": (262.5, 901.75)}.items():
        for summary in f[kind]["by_waves"].values():
            summary["by_class"] = {
                "steady": {"p50_ms": steady, "p99_ms": steady * 2, "polls": 300, "share": 0.9},
                "enriching": {"p50_ms": enriching, "p99_ms": enriching * 2, "polls": 33, "share": 0.1},
            }
    return changed


def test_the_render_shows_min_median_and_max_of_every_gated_read_figure(doc: dict[str, Any]) -> None:
    text = report.render(_with_gated_read(doc))
    x, dash = "\N{MULTIPLICATION SIGN}", "\N{EN DASH}"
    assert "3 runs per timing" in text
    assert f"1 waves 14.5{x} (11{dash}20{x})" in text
    assert f"10 waves 16.5{x} (13{dash}22{x})" in text
    assert f"(settled, 10 waves) 1.07{x} (1.02{dash}1.31{x})" in text
    assert f"ours p50 10.25 ms (9.5{dash}12 ms), p99 41.5 ms (25{dash}88 ms)" in text
    assert "Read polls by class" in text
    assert f"| 10 | legacy | 262.5 | 525 | 300 | 901.75 | 1,803.5 | 33 | 16.5{x} (13{dash}22{x}) |" in text
    assert "| 10 | ours | 10.5 | 21 | 300 | 17.25 | 34.5 | 33 |  |" in text


def test_a_figure_without_runs_renders_as_n_a() -> None:
    assert report.mmm(None) == "n/a"
    assert report.mmm({"min": None, "median": None, "max": None}) == "n/a"
    assert report.mmm({"min": 1, "median": 2.5, "max": 4}, " ms") == "2.5 ms (1\N{EN DASH}4 ms)"


def test_a_real_run_repeats_at_least_three_times(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[int] = []

    def fake(names: list[str], options: Any) -> list[Section]:
        seen.append(options.repeat)
        return [Section("sweep", "sweep")]

    monkeypatch.setattr(bench_main, "run_sections", fake)
    monkeypatch.setattr(bench_main, "publish", lambda out: None)
    interval = sys.getswitchinterval()
    try:
        bench_main.main(["--only", "sweep", "--repeat", "1", "--out", str(tmp_path / "a.json")])
        bench_main.main(
            ["--only", "sweep", "--scale", "smoke", "--repeat", "1", "--out", str(tmp_path / "b.json")]
        )
    finally:
        sys.setswitchinterval(interval)
    assert seen == [3, 1]
    assert json.loads((tmp_path / "a.json").read_text())["runs"] == 3


# --- the scale section: the estimate's basis and the topology ------------------------------------


def _with_scale(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with a scale section as bench/scale.py writes it, from hand-made measured figures."""
    cost = scale.PerEvent(
        wave_size=100,
        seconds=1.25,
        reconcile_seconds=0.75,
        drs_calls=2.5,
        ec2_calls=1.0,
        writes=1.25,
        wcu_per_write=36.0,
        reads=2.0,
        wave_item_bytes=36_000,
    )
    account = scale.PerAccount(
        servers=100, drs_requests_per_server=3.5, drs_peak_factor=4.5, assume_roles_per_level=2.0
    )
    changed = copy.deepcopy(doc)
    changed["scale"] = {
        "topology": scale.topology(),
        "wave_size": 100,
        "waves_per_account": 1,
        "waves": 4,
        "terminal": 4,
        "accounts": 4,
        "regions": ["eu-west-1", "us-east-1"],
        "launch_spread_s": 160.0,
        "failed_invocations": 0,
        "freshness_s": {"p50": 0.5, "p99": 1.5, "max": 1.75},
        "conflicts": 12,
        "reconcile_invocations": 400,
        "events_per_s": {"mean": 2.25, "peak": 8, "bin_s": 1.0},
        "measured_peak_factor": 3.56,
        "sent_peak_factor": 3.25,
        "dynamodb_writes_per_s": {"mean": 3.5, "peak": 20},
        "drs_per_account": {
            "requests": {"median": 352, "max": 371},
            "per_s_mean": {"median": 2.15, "max": 2.5},
            "per_s_peak": {"median": 9, "max": 13},
            "peak_factor": {"median": 4.5, "max": 5.25},
            "bin_s": 1.0,
        },
        "assume_roles_per_account": {
            "total": {"median": 5, "max": 6},
            "observe": {"median": 4, "max": 5},
            "start": {"median": 1, "max": 1},
            "refused": 0,
        },
        "per_account_cost": dataclasses.asdict(account),
        "per_event": dataclasses.asdict(cost),
        "estimate": scale.estimate(cost, account, peak_factor=3.56, run_events_per_s_per_wave=0.56),
        "seconds": 210.5,
    }
    return changed


def test_the_scale_headline_shows_the_hub_the_accounts_and_the_estimates_measured_basis(
    doc: dict[str, Any],
) -> None:
    changed = _with_scale(doc)
    text = report.render(changed)
    row = next(line for line in text.splitlines() if line.startswith("| scale | "))
    x = "\N{MULTIPLICATION SIGN}"
    assert (
        f"one hub over 4 spoke accounts (eu-west-1, us-east-1), each recovering 1 wave {x} 100 servers" in row
    )
    assert "Per event on 100-server waves: 1.25 s mean, 2.5 DRS + 1 EC2 calls" in row
    assert "events/s 2.25 mean, 8 peak (peak factor 3.56; of the simulators' sends 3.25)" in row
    # per account, median (max) across accounts, from each account's own DRS
    assert "2.15 (2.5) DRS requests/s mean, 9 (13) in the busiest 1 s, 352 (371) requests" in row
    assert "AssumeRole 5 (6), 0 refused" in row
    assert "wave item 36,000 bytes, at 0.56 events/s per wave" in row
    assert (
        "the measured peak factor 3.56 and the accounts' DRS peak factor 4.5 (launches over 600 s and "
        "300 servers per account: assumed, not measured)"
    ) in row
    one, hub = changed["scale"]["estimate"]["account"], changed["scale"]["estimate"]["hub"]
    assert "100,000 servers are 334 spoke accounts under one hub, 1,002 waves" in row
    assert f"the hub needs {hub['lambda_concurrency']:,} concurrent reconciles" in row
    assert f"each account sees {one['drs_requests_per_s_mean']} DRS requests/s mean" in row
    assert "independent deployments" not in row
    # a figure of the estimate changes the render: none is typed in the renderer
    changed["scale"]["estimate"]["hub"]["lambda_concurrency"] = 4321
    assert "needs 4,321 concurrent reconciles" in report.render(changed)


def test_the_render_states_the_topology_the_code_runs(doc: dict[str, Any]) -> None:
    changed = _with_scale(doc)
    statement = changed["scale"]["topology"]["statement"]
    assert statement.startswith("One deployment is a hub over many accounts and Regions")
    for level in (2, 3):
        text = report.render(changed, level=level)
        assert f"{'#' * level} Topology the code runs today\n\n{statement}\n" in text
    assert statement in report.render_block(changed)
    changed["scale"]["topology"]["statement"] = "A different statement."
    assert "A different statement." in report.render(changed)


def test_a_scale_section_of_an_older_run_says_to_rerun(doc: dict[str, Any]) -> None:
    older = _with_scale(doc)
    for key in ("estimate", "topology"):
        del older["scale"][key]
    text = report.render(older)
    assert "predates the estimate from 100-server waves" in text
    assert "Topology the code runs today" not in text


def test_a_scale_section_from_before_the_hub_says_to_rerun(doc: dict[str, Any]) -> None:
    """A run of one account, with the estimate of independent deployments and the statement that
    no hub is built: neither holds any more, so neither is shown."""
    older = _with_scale(doc)
    older["scale"]["estimate"] = {"basis": {}, "deployment": {}, "projection": {}}
    older["scale"]["topology"] = {
        "multi_account": False,
        "statement": "A hub over many accounts is not built.",
    }
    text = report.render(older)
    assert "predates the hub over spoke accounts" in text
    assert "Topology the code runs today" not in text and "not built" not in text
