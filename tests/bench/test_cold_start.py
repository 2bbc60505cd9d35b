"""The cold start section: its importtime parser, the task root it builds, and a smoke run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import cold_start
from bench.section import Options

# `python -S -X importtime -c "import json"` (3.11), trimmed, with a stray line a child may print.
SAMPLE = """\
import time: self [us] | cumulative | imported package
import time:       247 |        407 | io
import time:       420 |       5652 |     re
import time:       274 |        274 |       _json
import time:       883 |       1157 |     json.scanner
import time:       441 |       7248 |   json.decoder
import time:       351 |        351 |   json.encoder
a warning printed by the child
import time:       347 |       7946 | json
"""


def test_parser_reads_levels_and_times() -> None:
    lines = cold_start.parse_importtime(SAMPLE)
    assert [(line.name, line.level) for line in lines] == [
        ("io", 0),
        ("re", 2),
        ("_json", 3),
        ("json.scanner", 2),
        ("json.decoder", 1),
        ("json.encoder", 1),
        ("json", 0),
    ]
    assert cold_start.import_us(lines, "json") == 7946
    assert cold_start.import_us(lines, "io") == 407
    # Direct imports are json's own children; io before it is not part of json's import.
    assert cold_start.direct_imports(lines, "json") == {"json.decoder": 7248, "json.encoder": 351}
    assert cold_start.self_by_package(lines, "json") == {
        "re": 420,
        "_json": 274,
        "json": 883 + 441 + 351 + 347,
    }
    with pytest.raises(ValueError, match=r"no top-level import of json\.decoder"):
        cold_start.import_us(lines, "json.decoder")


def test_task_root_is_the_bundle_not_the_dev_venv(tmp_path: Path) -> None:
    task = tmp_path / "task"
    packages = cold_start.build_task_root(task)
    assert {"boto3", "botocore", "pydantic", "aws-lambda-powertools", "aws-xray-sdk"} <= set(packages)
    for name in ("boto3", "botocore", "pydantic_core", "aws_xray_sdk", "handlers", "reconciler", "schemas"):
        assert (task / name).is_dir(), name
    assert (task / "six.py").is_file()
    assert not (task / "moto").exists() and not (task / "requests").exists()  # dev-only packages
    assert not list(task.rglob("__pycache__")) and not list(task.rglob("*.pyc"))


def test_child_without_gnu_time_measures_rss_itself_and_reports_failures(tmp_path: Path) -> None:
    child = cold_start.Child(tmp_path / "task", tmp_path, gnu_time=None)
    cold_start.build_task_root(child.task)
    sample = child.run("handlers.read", init=True)
    assert sample.import_us > 0 and sample.rss_kb > 1024 and sample.init_s is not None and sample.init_s > 0
    assert any(line.name == "boto3" for line in sample.lines)
    assert not list(child.task.rglob("__pycache__"))  # measured runs never write bytecode
    with pytest.raises(RuntimeError, match="importing moto failed"):  # a dev-only package is not there
        child.run("moto", init=False)


def test_smoke_run_reports_every_module() -> None:
    section = cold_start.run(Options(scale="smoke"))
    figures = section.figures
    assert section.name == "cold_start"
    assert set(figures["modules"]) == {"boto3", *cold_start.HANDLERS}
    assert figures["runs_per_module"] == 1
    for name, module in figures["modules"].items():
        for key in ("import_ms_p50", "wall_ms_p50", "peak_rss_mb_p50", "no_bytecode_import_ms_p50"):
            assert module[key] > 0, (name, key)
        assert module["import_ratio_to_boto3"] > 0 and module["rss_ratio_to_boto3"] > 0
        assert 0 < len(module["top_imports"]["self_ms_by_package"]) <= cold_start.TOP
        assert 0 < len(module["top_imports"]["direct_cumulative_ms"]) <= cold_start.TOP
        if name in cold_start.HANDLERS:
            assert module["first_call_init_ms_p50"] > 0
            assert module["peak_rss_after_init_mb_p50"] > 0
        else:
            assert module["import_ratio_to_boto3"] == module["rss_ratio_to_boto3"] == 1.0
    labels = [label for label, _ in section.rows]
    assert [f"import {name}" for name in cold_start.HANDLERS] == [
        label for label in labels if label.startswith("import handlers")
    ]
    assert section.targets == []  # the issue sets no goal for cold start
