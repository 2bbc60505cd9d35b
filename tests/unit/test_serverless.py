"""serverless.yml says what the code needs: the functions, their triggers, retry and dead-letter
settings, and the table whose indexes the store queries. The roles are tested on the packaged
template (tests/deploy/test_policies.py), against the calls the code makes."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from reconciler.lifecycle import EVENT_SOURCE, EXECUTION_COMPLETED, WAVE_COMPLETED
from reconciler.store import INFLIGHT_INDEX, JOB_INDEX, LIST_INDEX, LIST_STATUS_INDEX
from schemas.records import TERMINAL_WAVE_STATUSES, ExecutionRecord

ROOT = Path(__file__).resolve().parents[2]
CONFIG: dict[str, Any] = yaml.safe_load((ROOT / "serverless.yml").read_text())
FUNCTIONS = CONFIG["functions"]


def test_five_functions_whose_handlers_exist():
    assert set(FUNCTIONS) == {"reconcile", "advance", "sweep", "read", "start"}
    for function in FUNCTIONS.values():
        module, name = function["handler"].rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module.replace("/", ".")), name))


def test_reconcile_is_triggered_by_drs_launch_results_with_retries_and_a_dead_letter_queue():
    reconcile = FUNCTIONS["reconcile"]
    rule = reconcile["events"][0]["eventBridge"]
    assert rule["pattern"] == {"source": ["aws.drs"], "detail-type": ["DRS Source Server Launch Result"]}
    assert rule["retryPolicy"]["maximumRetryAttempts"] == 185
    assert rule["retryPolicy"]["maximumEventAge"] == 86400
    assert "deadLetterQueueArn" in rule
    assert reconcile["maximumRetryAttempts"] == 2
    assert reconcile["maximumEventAge"] <= 21600
    assert "onFailure" in reconcile["destinations"]


def test_sweep_runs_every_minute_alone():
    sweep = FUNCTIONS["sweep"]
    assert sweep["events"][0]["schedule"]["rate"] == "rate(1 minute)"
    assert sweep["reservedConcurrency"] == 1


def test_http_routes_take_the_authorizer_of_their_kind():
    read, operate = "${param:routeAuthorizerRead}", "${param:routeAuthorizerOperate}"
    assert [e["httpApi"] for e in FUNCTIONS["read"]["events"]] == [
        {"method": "GET", "path": "/executions", "authorizer": read},
        {"method": "GET", "path": "/executions/{executionId}", "authorizer": read},
        {"method": "GET", "path": "/executions/{executionId}/report", "authorizer": read},
    ]
    assert [e["httpApi"] for e in FUNCTIONS["start"]["events"]] == [
        {"method": "POST", "path": "/executions", "authorizer": operate},
        {"method": "POST", "path": "/executions/{executionId}/resume", "authorizer": operate},
        {"method": "POST", "path": "/executions/{executionId}/cancel", "authorizer": operate},
        {"method": "POST", "path": "/executions/{executionId}/cleanup", "authorizer": operate},
    ]


def test_the_advance_function_follows_terminal_wave_writes_on_the_table_stream():
    (event,) = FUNCTIONS["advance"]["events"]
    stream = event["stream"]
    assert stream["type"] == "dynamodb"
    assert stream["arn"] == {"Fn::GetAtt": ["WavesTable", "StreamArn"]}
    assert stream["functionResponseType"] == "ReportBatchItemFailures"
    assert "onFailure" in stream["destinations"]
    image = stream["filterPatterns"][0]["dynamodb"]["NewImage"]
    assert set(image["status"]["S"]) == {s.value for s in TERMINAL_WAVE_STATUSES}
    table = CONFIG["resources"]["Resources"]["WavesTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}


def test_the_table_is_on_demand_recoverable_retained_and_has_the_indexes_the_store_queries():
    table = CONFIG["resources"]["Resources"]["WavesTable"]
    assert table["DeletionPolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    indexes = {index["IndexName"]: index for index in properties["GlobalSecondaryIndexes"]}
    assert set(indexes) == {JOB_INDEX, INFLIGHT_INDEX, LIST_INDEX, LIST_STATUS_INDEX}
    assert indexes[JOB_INDEX]["KeySchema"][0]["AttributeName"] == "jobId"
    assert indexes[INFLIGHT_INDEX]["KeySchema"][0]["AttributeName"] == "inflight"
    for name, hash_key in [(LIST_INDEX, "listed"), (LIST_STATUS_INDEX, "listedStatus")]:
        keys = [(k["AttributeName"], k["KeyType"]) for k in indexes[name]["KeySchema"]]
        assert keys == [(hash_key, "HASH"), ("createdAt", "RANGE")]
        # The list builds an ExecutionRecord from what the index projects: every required field.
        projection = indexes[name]["Projection"]
        projected = {*projection["NonKeyAttributes"], "createdAt", "pk", "sk"}
        required = {f.alias or n for n, f in ExecutionRecord.model_fields.items() if f.is_required()}
        assert projection["ProjectionType"] == "INCLUDE"
        assert required <= projected, required - projected
    assert CONFIG["provider"]["environment"]["TABLE_NAME"] == {"Ref": "WavesTable"}


def test_our_events_are_declared_as_the_code_publishes_them():
    declared = CONFIG["custom"]["ourEvents"]
    assert declared["source"] == EVENT_SOURCE
    assert declared["detailTypes"] == [WAVE_COMPLETED, EXECUTION_COMPLETED]
    assert CONFIG["provider"]["environment"]["EVENT_BUS_NAME"] == "${param:eventBusName}"


def test_finished_executions_expire_by_ttl():
    table = CONFIG["resources"]["Resources"]["WavesTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert CONFIG["params"]["default"]["retentionDays"] == 90
