"""What keeps the packaged stack recoverable and its failures visible: the table survives deletes
and can be restored, logs are kept for the configured days, every lost event waits in a
dead-letter queue that raises an alarm, reconcile's errors raise one too, DRS events and async
invocations are retried before they are given up, so are the table stream's records the advance
function follows up, and the minutely sweep never overlaps itself."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy.conftest import Resource, Template

ALARM = "AWS::CloudWatch::Alarm"


def alarms_on(template: Template, namespace: str, metric: str, dimension: dict[str, Any]) -> list[Resource]:
    """The alarms on one metric of one resource (a single dimension, as AWS publishes these)."""
    return [
        alarm
        for alarm in template.of_type(ALARM).values()
        if alarm["Properties"]["Namespace"] == namespace
        and alarm["Properties"]["MetricName"] == metric
        and alarm["Properties"]["Dimensions"] == [dimension]
    ]


def assert_fires_on_the_first(template: Template, alarm: Resource) -> None:
    """Above zero is an alarm, no data is not, and it notifies the stack's SNS topic."""
    properties = alarm["Properties"]
    assert properties["Threshold"] == 0
    assert properties["ComparisonOperator"] == "GreaterThanThreshold"
    assert properties["EvaluationPeriods"] == 1
    assert properties["TreatMissingData"] == "notBreaching"
    assert properties["AlarmActions"]
    for action in properties["AlarmActions"]:
        assert template.resources[action["Ref"]]["Type"] == "AWS::SNS::Topic"


def test_the_package_is_of_its_stage(packaged: Template) -> None:
    ((_, table),) = packaged.of_type("AWS::DynamoDB::Table").items()
    assert table["Properties"]["TableName"] == f"drs-wave-reconciler-{packaged.stage}"


def test_the_table_is_retained_recoverable_and_protected_from_deletion(packaged: Template) -> None:
    ((_, table),) = packaged.of_type("AWS::DynamoDB::Table").items()
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["DeletionProtectionEnabled"] is True


def test_every_log_group_keeps_logs_for_the_configured_days(packaged: Template) -> None:
    groups = packaged.of_type("AWS::Logs::LogGroup")
    # One per function, and the HTTP API's access log.
    assert len(groups) == len(packaged.of_type("AWS::Lambda::Function")) + 1
    for name, group in groups.items():
        assert group["Properties"].get("RetentionInDays") == packaged.params["logRetentionDays"], name


def test_prod_keeps_logs_longer_than_the_default(template: Template, prod_template: Template) -> None:
    assert prod_template.params["logRetentionDays"] > template.params["logRetentionDays"]


def test_every_dead_letter_queue_alarms_on_its_first_message(packaged: Template) -> None:
    queues = {name for name in packaged.of_type("AWS::SQS::Queue") if name.endswith("DeadLetterQueue")}
    assert {"ReconcileDeadLetterQueue", "AdvanceDeadLetterQueue"} <= queues
    for queue in sorted(queues):
        dimension = {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
        (alarm,) = alarms_on(packaged, "AWS/SQS", "ApproximateNumberOfMessagesVisible", dimension)
        assert alarm["Properties"]["Statistic"] == "Maximum"
        assert_fires_on_the_first(packaged, alarm)


def test_reconcile_errors_raise_an_alarm(packaged: Template) -> None:
    dimension = {"Name": "FunctionName", "Value": {"Ref": "ReconcileLambdaFunction"}}
    (alarm,) = alarms_on(packaged, "AWS/Lambda", "Errors", dimension)
    assert alarm["Properties"]["Statistic"] == "Sum"
    assert_fires_on_the_first(packaged, alarm)


def test_drs_events_are_retried_then_kept_in_the_dead_letter_queue(packaged: Template) -> None:
    reconcile = {"Fn::GetAtt": ["ReconcileLambdaFunction", "Arn"]}
    targets = [
        target
        for rule in packaged.of_type("AWS::Events::Rule").values()
        for target in rule["Properties"]["Targets"]
        if target["Arn"] == reconcile
    ]
    assert targets
    for target in targets:
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]}}


def test_failed_async_reconciles_are_retried_then_sent_to_the_dead_letter_queue(packaged: Template) -> None:
    (config,) = [
        c["Properties"]
        for c in packaged.of_type("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": "ReconcileLambdaFunction"}
    ]
    assert config["MaximumRetryAttempts"] > 0
    assert 0 < config["MaximumEventAgeInSeconds"] <= 21600
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]
    }


def test_the_sweep_never_overlaps_itself(packaged: Template) -> None:
    assert packaged.properties("SweepLambdaFunction")["ReservedConcurrentExecutions"] == 1


def test_the_stream_follow_up_retries_bisects_and_then_keeps_the_record(packaged: Template) -> None:
    (mapping,) = [
        m["Properties"]
        for m in packaged.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Fn::GetAtt": ["AdvanceLambdaFunction", "Arn"]}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["WavesTable", "StreamArn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 100
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["AdvanceDeadLetterQueue", "Arn"]
    }
    # Only terminal waves wake it (not every write of the table)
    (pattern,) = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern["dynamodb"]["NewImage"]["status"]["S"] == ["COMPLETED", "PARTIAL", "FAILED", "CANCELLED"]
    table = packaged.properties("WavesTable")
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
