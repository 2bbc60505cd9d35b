"""What an operator sees, on the packaged template: every alarm notifies the alarm topic when it
fires and when it clears, alarms on our own metrics watch the namespace and dimensions the code
really emits (the EMF line Powertools prints, captured here) and only metrics the code emits, the
stuck-wave threshold reaches the sweep, and the one dashboard's body is valid JSON whose widgets
show every alarmed metric and the functions, the API and the dead-letter queues."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.observability import metrics, metrics_count
from reconciler.settings import Settings
from tests.deploy.conftest import ROOT, Template

ALARM = "AWS::CloudWatch::Alarm"
DASHBOARD = "AWS::CloudWatch::Dashboard"
# Operators must hear about these (issue 17, part 5).
ALARMED = {"WavesStuckLaunching", "SweepErrors", "SweepDeferred", "OrphanedJobs", "MalformedEvents"}
# What the dashboard must show besides the alarmed metrics.
SHOWN = {
    "Reconciles",
    "Writes",
    "Conflicts",
    "JobCompleteToTerminalSeconds",
    "SweptWaves",
    "StartsDeferred",
    ("AWS/ApiGateway", "4xx"),
    ("AWS/ApiGateway", "5xx"),
    ("AWS/ApiGateway", "Latency"),
}
SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")
PSEUDO = {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::URLSuffix", "AWS::StackName"}

Metric = tuple[str, str, frozenset[tuple[str, str]]]  # namespace, name, dimensions


@pytest.fixture
def emf(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[dict[str, Any]]:
    """The EMF document Powertools prints for one metrics_count, as a handler's flush prints it."""
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()
    capsys.readouterr()
    metrics_count("WavesStuckLaunching", 0)
    metrics.flush_metrics()
    (line,) = capsys.readouterr().out.strip().splitlines()
    yield json.loads(line)
    metrics.clear_metrics()


def emitted_names() -> set[str]:
    """Every metric name the production code passes to metrics_count."""
    sources = [*ROOT.glob("handlers/*.py"), *ROOT.glob("reconciler/*.py")]
    return {name for path in sources for name in re.findall(r'metrics_count\(\s*"(\w+)"', path.read_text())}


def alarms(template: Template) -> dict[str, dict[str, Any]]:
    found = {name: alarm["Properties"] for name, alarm in template.of_type(ALARM).items()}
    assert found, f"{template.stage}: no alarm"
    return found


def ours(template: Template) -> dict[str, dict[str, Any]]:
    """The alarms on our own metrics (not an AWS/ namespace)."""
    return {n: a for n, a in alarms(template).items() if not a["Namespace"].startswith("AWS/")}


def sub(variable: str) -> str:
    """How Fn::Sub names a resource's Ref (X) or attribute (X.Arn)."""
    return "${" + variable + "}"


def value_of(value: Any) -> str:
    """A dimension value as the dashboard's Fn::Sub writes it: Ref X -> ${X}, GetAtt -> ${X.A}."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return sub(value["Ref"])
    resource, attribute = value["Fn::GetAtt"]
    return sub(f"{resource}.{attribute}")


def alarm_metric(alarm: dict[str, Any]) -> Metric:
    dimensions = frozenset((d["Name"], value_of(d["Value"])) for d in alarm["Dimensions"])
    return alarm["Namespace"], alarm["MetricName"], dimensions


def dashboard(template: Template) -> tuple[dict[str, Any], set[str]]:
    """The dashboard's body parsed (Fn::Sub's ${...} left as text) and the variables it uses."""
    ((_, resource),) = template.of_type(DASHBOARD).items()
    body = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str), "DashboardBody is Fn::Sub of one JSON string"
    return json.loads(body), set(SUB_VARIABLE.findall(body))


def widget_metrics(body: dict[str, Any]) -> set[Metric]:
    found: set[Metric] = set()
    for widget in body["widgets"]:
        for entry in widget["properties"].get("metrics", []):
            names = [part for part in entry if isinstance(part, str)]
            assert "..." not in names, "write every metric out (no '...' shorthand)"
            namespace, name, *dimensions = names
            found.add((namespace, name, frozenset(zip(dimensions[::2], dimensions[1::2], strict=True))))
    return found


def test_every_alarm_notifies_the_topic_when_it_fires_and_when_it_clears(packaged: Template) -> None:
    for name, alarm in alarms(packaged).items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["TreatMissingData"] in {"notBreaching", "breaching"}, name  # chosen, not defaulted
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold", name
        assert alarm["Threshold"] == 0 and alarm["EvaluationPeriods"] == 1, name


def test_operators_hear_of_stuck_waves_sweep_trouble_orphaned_jobs_and_malformed_events(
    packaged: Template,
) -> None:
    watched = {alarm["MetricName"] for alarm in ours(packaged).values()}
    assert watched >= ALARMED
    assert watched <= emitted_names(), "an alarm watches a metric no code emits"


def test_our_alarms_watch_the_namespace_and_dimensions_the_code_emits(
    packaged: Template, emf: dict[str, Any]
) -> None:
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    (dimension_names,) = directive["Dimensions"]
    emitted = [{"Name": name, "Value": emf[name]} for name in dimension_names]
    assert emitted == [{"Name": "service", "Value": "drs-reconciler"}]
    for name, alarm in ours(packaged).items():
        assert alarm["Namespace"] == directive["Namespace"], name
        assert alarm["Dimensions"] == emitted, name
    # The functions' environment names the same namespace and service (the code's own win).
    for name, function in packaged.of_type("AWS::Lambda::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == directive["Namespace"], name
        assert variables["POWERTOOLS_SERVICE_NAME"] == emf["service"], name


def test_a_wave_stuck_past_the_stage_s_threshold_alarms_and_so_does_a_silent_sweep(
    packaged: Template,
) -> None:
    (alarm,) = [a for a in ours(packaged).values() if a["MetricName"] == "WavesStuckLaunching"]
    assert alarm["Statistic"] == "Maximum"
    assert alarm["TreatMissingData"] == "breaching"  # emitted every pass: no data is no sweep
    assert alarm["Period"] >= 120  # a late minute of the schedule is not an outage
    minutes = packaged.params["stuckWaveMinutes"]
    variables = packaged.properties("SweepLambdaFunction")["Environment"]["Variables"]
    threshold = variables["STUCK_WAVE_MINUTES"]
    assert (
        Settings.from_env({"TABLE_NAME": "waves", "STUCK_WAVE_MINUTES": str(threshold)}).stuck_wave_minutes
        == minutes
    )
    assert f"{minutes} minutes" in alarm["AlarmDescription"]


def test_the_other_custom_metric_alarms_count_events_and_treat_no_data_as_none(packaged: Template) -> None:
    for name, alarm in ours(packaged).items():
        if alarm["MetricName"] != "WavesStuckLaunching":
            assert alarm["Statistic"] == "Sum", name
            assert alarm["TreatMissingData"] == "notBreaching", name


def test_one_dashboard_whose_widgets_show_every_alarmed_metric(packaged: Template) -> None:
    body, variables = dashboard(packaged)
    for variable in variables:  # Fn::Sub resolves each one: a pseudo parameter or a resource
        assert variable in PSEUDO or variable.split(".")[0] in packaged.resources, variable
    shown = widget_metrics(body)
    for name, alarm in alarms(packaged).items():
        assert alarm_metric(alarm) in shown, f"{name}'s metric is on no widget"
    names = {(namespace, metric) for namespace, metric, _ in shown}
    for wanted in SHOWN:
        assert (("DrsReconciler", wanted) if isinstance(wanted, str) else wanted) in names, wanted
    ours_shown = {metric for namespace, metric, _ in shown if namespace == "DrsReconciler"}
    assert ours_shown <= emitted_names(), "a widget shows a metric no code emits"
    # Each function's errors and throttles, the API by its id, every widget in this Region.
    for function in packaged.of_type("AWS::Lambda::Function"):
        for metric in ("Errors", "Throttles"):
            assert ("AWS/Lambda", metric, frozenset({("FunctionName", sub(function))})) in shown
    assert ("AWS/ApiGateway", "5xx", frozenset({("ApiId", "${HttpApi}")})) in shown
    for widget in body["widgets"]:
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "${AWS::Region}", widget["properties"]["title"]


def test_the_dashboard_shows_every_alarm_s_state(packaged: Template) -> None:
    body, _ = dashboard(packaged)
    (widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert set(widget["properties"]["alarms"]) == {sub(f"{name}.Arn") for name in alarms(packaged)}
