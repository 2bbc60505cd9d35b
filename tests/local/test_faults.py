"""The fault layer (`local.faults.CloudFaults`): each kind reaches the handlers' real botocore
clients as AWS's answer would, in the service's protocol, and is counted only when it fires; a
lost answer's request really committed and was re-sent; DynamoDB's ClientRequestToken is honoured;
a seed replays the same faults."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from local.faults import CloudFaults
from local.stack import REGION, LocalStack
from reconciler.clients import client

KEY = {"pk": {"S": "EXEC#faults"}, "sk": {"S": "EXEC"}}
ONE = {":one": {"N": "1"}}


@pytest.fixture
def table(stack: LocalStack, no_retry_sleep: list[float]) -> str:
    stack.dynamodb.put_item(TableName=stack.table_name, Item={**KEY, "n": {"N": "0"}})
    return stack.table_name


def counter(stack: LocalStack) -> int:
    item = stack.dynamodb.get_item(TableName=stack.table_name, Key=KEY, ConsistentRead=True)["Item"]
    return int(item["n"]["N"])


def update_one(table: str) -> dict[str, Any]:
    """An unconditional UpdateItem (or transaction action) that adds one to the counter."""
    return {
        "TableName": table,
        "Key": KEY,
        "UpdateExpression": "ADD n :one",
        "ExpressionAttributeValues": ONE,
    }


def add_one(table: str, **extra: Any) -> dict[str, Any]:
    request = {"UpdateExpression": "ADD n :one", "ExpressionAttributeValues": ONE, **extra}
    reply: dict[str, Any] = client("dynamodb").update_item(TableName=table, Key=KEY, **request)
    return reply


def code_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


# ------------------------------------------------------------------ lost answers


def test_a_lost_update_committed_and_was_sent_again(stack: LocalStack, table: str):
    # Given the next UpdateItem's answer is lost
    stack.faults.arm("lost_answer", "dynamodb:UpdateItem")
    # When a client adds one, unconditionally
    reply = add_one(table)
    # Then botocore re-sent the very same request: the first attempt committed, and so did the second
    assert reply["ResponseMetadata"]["RetryAttempts"] == 1
    assert counter(stack) == 2
    assert stack.counter.calls["dynamodb:UpdateItem"] == 1  # one API call, two attempts
    assert stack.faults.fired == Counter({"lost_answer": 1})
    assert stack.faults.fired_by_operation == Counter({("lost_answer", "dynamodb:UpdateItem"): 1})
    # and the fault was used up
    add_one(table)
    assert counter(stack) == 3
    assert stack.faults.fired["lost_answer"] == 1


def test_a_conditional_write_whose_answer_was_lost_fails_its_own_condition(stack: LocalStack, table: str):
    # What AWS does to a conditional write: the re-sent request meets the first attempt's result
    stack.faults.arm("lost_answer", "dynamodb:UpdateItem")
    with pytest.raises(ClientError) as raised:
        add_one(
            table, ConditionExpression="n = :zero", ExpressionAttributeValues={**ONE, ":zero": {"N": "0"}}
        )
    assert code_of(raised) == ("ConditionalCheckFailedException", 400)
    assert counter(stack) == 1  # though it landed


def test_a_lost_start_recovery_answer_is_a_read_timeout_and_the_job_exists(stack: LocalStack, table: str):
    # StartRecovery's client never retries (it is not idempotent): the caller sees the lost answer
    (server,) = stack.add_servers(["db-01"])
    stack.faults.arm("lost_answer", "drs:StartRecovery")
    with pytest.raises(ReadTimeoutError):
        client("drs", retries=False).start_recovery(sourceServers=[{"sourceServerID": server}], isDrill=True)
    assert stack.fake.call_counts()["StartRecovery"] == 1
    assert len(stack.fake.describe_jobs({})["items"]) == 1  # DRS did create the job
    assert stack.faults.fired == Counter({"lost_answer": 1})


def test_a_lost_answer_of_a_failed_write_is_not_lost(stack: LocalStack, table: str):
    # Only a committed request's answer is lost: an error answer committed nothing
    stack.faults.arm("lost_answer", "dynamodb:UpdateItem")
    with pytest.raises(ClientError):
        add_one(
            table, ConditionExpression="n = :nine", ExpressionAttributeValues={**ONE, ":nine": {"N": "9"}}
        )
    assert stack.faults.fired == Counter()
    assert stack.faults.armed() == [("lost_answer", "dynamodb:UpdateItem", 1)]


# ------------------------------------------------------------------ errors before the service


def test_nothing_armed_nothing_fires(stack: LocalStack, table: str):
    add_one(table)
    client("drs").describe_jobs()
    client("ec2").describe_instances()
    assert stack.faults.fired == Counter() and stack.faults.armed() == []


def test_arming_alone_counts_nothing(stack: LocalStack, table: str):
    stack.faults.arm("server_error", "drs:StartRecovery", times=3)
    stack.faults.arm_rate("throttle", "ec2:*", 1.0)
    add_one(table)
    assert stack.faults.fired == Counter()
    assert len(stack.faults.armed()) == 2
    stack.faults.disarm()
    assert stack.faults.armed() == []


@pytest.mark.parametrize(
    ("kind", "operation", "expected"),
    [
        ("server_error", "dynamodb:UpdateItem", ("InternalServerError", 500)),
        ("throttle", "dynamodb:UpdateItem", ("ProvisionedThroughputExceededException", 400)),
        ("transaction_conflict", "dynamodb:UpdateItem", ("TransactionConflictException", 400)),
        ("server_error", "dynamodb:*", ("InternalServerError", 500)),
        ("throttle", "*", ("ProvisionedThroughputExceededException", 400)),
    ],
)
def test_a_dynamodb_fault_commits_nothing_and_botocore_retries_it(
    stack: LocalStack, table: str, kind: str, operation: str, expected: tuple[str, int]
):
    # Given the fault on every attempt (standard mode: 5 attempts)
    stack.faults.arm(kind, operation, times=10)
    # When a write meets it, then the caller sees AWS's answer, and nothing was written
    with pytest.raises(ClientError) as raised:
        add_one(table)
    stack.faults.disarm()  # (a wildcard would also meet the test's own read)
    assert code_of(raised) == expected
    assert counter(stack) == 0
    retried = kind != "transaction_conflict"  # botocore does not retry that one: our code must
    assert stack.faults.fired == Counter({kind: 5 if retried else 1})
    # And a fault met once is retried away by botocore
    if retried:
        stack.faults.clear()
        stack.faults.arm(kind, operation, times=1)
        assert add_one(table)["ResponseMetadata"]["RetryAttempts"] == 1
        assert stack.faults.fired == Counter({kind: 1})
        assert counter(stack) == 1


def test_a_cancelled_transaction_names_one_conflict_per_transaction(stack: LocalStack, table: str):
    stack.faults.arm("transaction_conflict", "dynamodb:TransactWriteItems")
    update = update_one(table)
    put = {"TableName": table, "Item": {"pk": {"S": "EXEC#faults"}, "sk": {"S": "WAVE#0001"}}}
    with pytest.raises(ClientError) as raised:
        client("dynamodb").transact_write_items(TransactItems=[{"Update": update}, {"Put": put}])
    assert code_of(raised) == ("TransactionCanceledException", 400)
    assert [r["Code"] for r in raised.value.response["CancellationReasons"]] == [
        "TransactionConflict",
        "None",
    ]
    assert counter(stack) == 0
    assert stack.faults.fired == Counter({"transaction_conflict": 1})
    # the fault never touches a read
    stack.faults.arm("transaction_conflict", "*")
    client("dynamodb").get_item(TableName=table, Key=KEY)
    assert stack.faults.fired == Counter({"transaction_conflict": 1})


def test_drs_ec2_and_eventbridge_faults_in_their_own_protocols(stack: LocalStack, table: str):
    (server,) = stack.add_servers(["db-01"])
    stack.faults.arm("throttle", "drs:DescribeJobs", times=5)
    stack.faults.arm("server_error", "ec2:DescribeInstances", times=5)
    stack.faults.arm("throttle", "events:PutEvents", times=5)
    stack.faults.arm("quota_exceeded", "drs:*")
    cases = [
        (lambda: client("drs").describe_jobs(), ("ThrottlingException", 429)),
        (lambda: client("ec2").describe_instances(), ("InternalError", 500)),
        (
            lambda: client("events").put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}]),
            ("ThrottlingException", 400),
        ),
        (
            lambda: client("drs", retries=False).start_recovery(
                sourceServers=[{"sourceServerID": server}], isDrill=True
            ),
            ("ServiceQuotaExceededException", 402),
        ),
    ]
    for call, expected in cases:
        with pytest.raises(ClientError) as raised:
            call()
        assert code_of(raised) == expected
    assert stack.fake.call_counts().get("StartRecovery", 0) == 0  # nothing reached DRS
    assert stack.faults.fired == Counter({"throttle": 10, "server_error": 5, "quota_exceeded": 1})


def test_ec2_throttling_is_request_limit_exceeded(stack: LocalStack, table: str):
    stack.faults.arm("throttle", "ec2:DescribeInstances", times=5)
    with pytest.raises(ClientError) as raised:
        client("ec2").describe_instances()
    assert code_of(raised) == ("RequestLimitExceeded", 503)


def test_a_connect_timeout_reaches_nothing_and_botocore_retries_it(stack: LocalStack, table: str):
    stack.faults.arm("connect_timeout", "dynamodb:UpdateItem", times=5)
    with pytest.raises(ConnectTimeoutError):
        add_one(table)
    assert counter(stack) == 0
    stack.faults.arm("connect_timeout", "dynamodb:UpdateItem", times=2)
    assert add_one(table)["ResponseMetadata"]["RetryAttempts"] == 2
    assert counter(stack) == 1
    assert stack.faults.fired == Counter({"connect_timeout": 7})


# ------------------------------------------------------------------ IAM


def stub_iam(function: str, service_operation: str, params: dict[str, Any]) -> list[str]:
    """The read function may only Query; everyone else anything."""
    if function == "read" and service_operation != "dynamodb:Query":
        return [service_operation]
    return []


def session_with(faults: CloudFaults) -> boto3.session.Session:
    session = boto3.session.Session(region_name=REGION)
    faults.install(session.events)
    return session


def test_a_call_the_role_does_not_allow_is_refused_as_aws_refuses_it(stack: LocalStack, table: str):
    function = {"name": "read"}
    faults = CloudFaults(iam=stub_iam, current_function=lambda: function["name"])
    session = session_with(faults)
    dynamodb, ec2 = session.client("dynamodb"), session.client("ec2")
    update = update_one(table)
    # Not enforced: allowed
    dynamodb.update_item(**update)
    assert faults.fired == Counter()
    # Enforced: refused, nothing written
    faults.enforce_iam = True
    with pytest.raises(ClientError) as raised:
        dynamodb.update_item(**update)
    assert code_of(raised) == ("AccessDeniedException", 400)
    message = raised.value.response["Error"]["Message"]
    assert message.startswith(
        "User: arn:aws:sts::123456789012:assumed-role/read/read is not authorized to perform: "
        f"dynamodb:UpdateItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/{table}"
    )
    with pytest.raises(ClientError) as raised:
        ec2.describe_instances()
    assert code_of(raised) == ("UnauthorizedOperation", 403)
    assert "is not authorized to perform: ec2:DescribeInstances" in raised.value.response["Error"]["Message"]
    dynamodb.query(
        TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": KEY["pk"]}
    )
    assert counter(stack) == 1
    assert faults.fired == Counter({"access_denied": 2})
    # Another function's role allows it
    function["name"] = "start"
    dynamodb.update_item(**update)
    assert counter(stack) == 2


def test_the_stack_checks_serverless_roles_once_told_to(stack: LocalStack, table: str):
    stack.faults.enforce_iam = True
    stack.calls_by_function.current = "read"
    try:
        with pytest.raises(ClientError) as raised:
            add_one(table)
    finally:
        stack.calls_by_function.current = "-"
    assert code_of(raised) == ("AccessDeniedException", 400)
    assert stack.faults.fired == Counter({"access_denied": 1})
    add_one(table)  # the test itself is no function: not checked
    assert counter(stack) == 1


# ------------------------------------------------------------------ DynamoDB's ClientRequestToken


def test_a_transaction_sent_again_with_its_token_is_answered_as_the_success_it_was(
    stack: LocalStack, table: str
):
    dynamodb = client("dynamodb")
    update = update_one(table)
    dynamodb.transact_write_items(TransactItems=[{"Update": update}], ClientRequestToken="token-1")
    # The same request again (within 10 minutes): success, not applied again
    assert dynamodb.transact_write_items(TransactItems=[{"Update": update}], ClientRequestToken="token-1")
    assert counter(stack) == 1
    assert stack.faults.replayed == 1
    # The same token with other items: refused
    other = {**update, "ExpressionAttributeValues": {":one": {"N": "2"}}}
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=[{"Update": other}], ClientRequestToken="token-1")
    assert code_of(raised) == ("IdempotentParameterMismatchException", 400)
    assert counter(stack) == 1
    assert stack.faults.fired == Counter()  # AWS's behaviour, not a fault


def test_a_transaction_whose_answer_was_lost_commits_once(stack: LocalStack, table: str):
    stack.faults.arm("lost_answer", "dynamodb:TransactWriteItems")
    update = update_one(table)
    reply = client("dynamodb").transact_write_items(TransactItems=[{"Update": update}])  # botocore's token
    assert reply["ResponseMetadata"]["RetryAttempts"] == 1
    assert counter(stack) == 1
    assert stack.faults.fired == Counter({"lost_answer": 1}) and stack.faults.replayed == 1


def test_a_token_expires_after_ten_minutes(stack: LocalStack, table: str):
    now = {"t": 0.0}
    faults = CloudFaults(clock=lambda: now["t"])
    dynamodb = session_with(faults).client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
    update = update_one(table)
    dynamodb.transact_write_items(TransactItems=[{"Update": update}], ClientRequestToken="token-2")
    now["t"] = 599.0
    dynamodb.transact_write_items(TransactItems=[{"Update": update}], ClientRequestToken="token-2")
    assert counter(stack) == 1
    now["t"] = 1200.0
    dynamodb.transact_write_items(TransactItems=[{"Update": update}], ClientRequestToken="token-2")
    assert counter(stack) == 2  # a new request


# ------------------------------------------------------------------ rates and seeds


def throttled_calls(seed: int, table: str, calls: int = 40) -> list[int]:
    faults = CloudFaults(seed=seed)
    faults.arm_rate("throttle", "dynamodb:GetItem", 0.5)
    dynamodb = session_with(faults).client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
    throttled = []
    for i in range(calls):
        try:
            dynamodb.get_item(TableName=table, Key=KEY)
        except ClientError:
            throttled.append(i)
    assert faults.fired["throttle"] == len(throttled)
    return throttled


def test_a_rate_is_reproducible_from_its_seed(stack: LocalStack, table: str):
    first, again, other = throttled_calls(7, table), throttled_calls(7, table), throttled_calls(8, table)
    assert first == again
    assert first != other
    assert 8 <= len(first) <= 32  # about half


def test_arming_is_checked():
    faults = CloudFaults()
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.arm("gremlins")
    with pytest.raises(ValueError, match="operation"):
        faults.arm("throttle", "UpdateItem")
    with pytest.raises(ValueError, match="share"):
        faults.arm_rate("throttle", "*", 1.5)
    with pytest.raises(ValueError, match="times"):
        faults.arm("throttle", "*", times=0)
