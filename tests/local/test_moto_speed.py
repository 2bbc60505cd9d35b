"""The fast path for moto's DynamoDB reads answers exactly what moto's serializer answers.

Every read our code makes (GetItem hit and miss, Query by key and by index, paginated with
LastEvaluatedKey, Scan, BatchGetItem, with and without ConsumedCapacity) is made twice: once
through moto's own serializer, once through `local.moto_speed`; the parsed answers must match.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import moto_speed
from local.serverless import table_properties

TABLE = "speed"
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("get_item", {"Key": {"pk": {"S": "EXEC#a"}, "sk": {"S": "WAVE#001"}}, "ConsistentRead": True}),
    ("get_item", {"Key": {"pk": {"S": "EXEC#missing"}, "sk": {"S": "WAVE#001"}}}),
    ("query", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "EXEC#a"}}}),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "EXEC#a"}},
            "Limit": 2,
            "ReturnConsumedCapacity": "TOTAL",
        },
    ),
    ("query", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "EXEC#none"}}}),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p AND sk > :s",
            "ExpressionAttributeValues": {":p": {"S": "EXEC#a"}, ":s": {"S": "WAVE#002"}},
            "ScanIndexForward": False,
        },
    ),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "EXEC#a"}},
            "ExclusiveStartKey": {"pk": {"S": "EXEC#a"}, "sk": {"S": "WAVE#003"}},
        },
    ),
    ("scan", {"Limit": 3}),
    ("scan", {"ReturnConsumedCapacity": "INDEXES"}),
]


def item(wave: int, pk: str = "EXEC#a") -> dict[str, Any]:
    server = {
        "sourceServerId": {"S": f"s-{wave:017d}"},
        "launchStatus": {"S": "LAUNCHED"},
        "privateIp": {"S": "10.0.0.1"},
        "flags": {"BOOL": True},
        "nothing": {"NULL": True},
        "tags": {"SS": ["a", "b"]},
        "sizes": {"NS": ["1", "2.5"]},
    }
    return {
        "pk": {"S": pk},
        "sk": {"S": f"WAVE#{wave:03d}"},
        "version": {"N": str(wave + 1)},
        "servers": {"L": [{"M": server}, {"M": server}]},
        "nested": {"M": {"deep": {"M": {"deeper": {"L": [{"N": "7"}, {"S": "ü ✓"}]}}}}},
    }


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(TableName=TABLE, **table_properties())
        for wave in range(1, 6):
            dynamodb.put_item(TableName=TABLE, Item=item(wave))
            dynamodb.put_item(TableName=TABLE, Item=item(wave, "EXEC#0"))  # partitions either side
            dynamodb.put_item(TableName=TABLE, Item=item(wave, "EXEC#z"))
        # binary data has no JSON form: reads that meet it take moto's own path
        dynamodb.put_item(TableName=TABLE, Item={**item(1, "EXEC#b"), "blob": {"B": b"\x00\x01"}})
        yield dynamodb
    moto_speed.install()  # as the stacks leave it


def answers(client: Any) -> list[dict[str, Any]]:
    found = []
    for operation, request in REQUESTS:
        answer = getattr(client, operation)(TableName=TABLE, **request)
        answer.pop("ResponseMetadata")
        found.append(answer)
    keys = [{"pk": {"S": "EXEC#a"}, "sk": {"S": f"WAVE#{w:03d}"}} for w in (1, 3, 9)]
    batch = client.batch_get_item(RequestItems={TABLE: {"Keys": keys}})
    batch.pop("ResponseMetadata")
    batch["Responses"][TABLE].sort(key=lambda i: i["sk"]["S"])
    found.append(batch)
    return found


def test_the_fast_answers_parse_the_same_as_motos_own(client: Any):
    moto_speed.uninstall()
    slow = answers(client)
    moto_speed.install()
    fast = answers(client)
    assert fast == slow
    assert slow[0]["Item"]["nested"]["M"]["deep"]["M"]["deeper"]["L"][1] == {"S": "ü ✓"}
    assert "LastEvaluatedKey" in slow[3] and "ConsumedCapacity" in slow[3]
    assert "Item" not in slow[1]
    assert [i["sk"]["S"] for i in slow[2]["Items"]] == [f"WAVE#{w:03d}" for w in range(1, 6)]
    assert {i["pk"]["S"] for i in slow[2]["Items"]} == {"EXEC#a"}
    assert [i["sk"]["S"] for i in slow[5]["Items"]] == ["WAVE#005", "WAVE#004", "WAVE#003"]


def test_reads_take_the_fast_path_unless_they_meet_binary_data(client: Any):
    moto_speed.install()
    before = moto_speed.answered
    found = client.get_item(TableName=TABLE, Key={"pk": {"S": "EXEC#a"}, "sk": {"S": "WAVE#002"}})
    assert moto_speed.answered == before + 1 and found["Item"]["version"] == {"N": "3"}
    blob = client.get_item(TableName=TABLE, Key={"pk": {"S": "EXEC#b"}, "sk": {"S": "WAVE#001"}})
    assert moto_speed.answered == before + 1 and blob["Item"]["blob"] == {"B": b"\x00\x01"}
    client.describe_table(TableName=TABLE)
    client.put_item(TableName=TABLE, Item=item(9))
    assert moto_speed.answered == before + 1
