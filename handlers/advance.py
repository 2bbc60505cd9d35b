"""Lambda: the table's stream follows up a wave that turned terminal; this function may act on it.

The reconcile function's role only reads DRS/EC2 and writes waves, so when its write ends a wave
the next steps happen here, from that write's stream record (serverless.yml filters the stream
to terminal waves with pending events): publish the wave's Wave Completed event and take the
execution's next step (start the next wave, pause, finish). Both are idempotent, so a record
delivered twice does no harm. A temporary failure reports the record as failed (partial batch
response) and the stream retries from it; a permanent one is logged and counted, and the sweep
repeats both steps for anything left behind.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.errors import PermanentError, TemporaryError
from reconciler.observability import logger, metrics, metrics_count, tracer
from reconciler.runtime import services
from reconciler.store import WaveKey

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def follow_up(record: DynamoDBRecord) -> None:
    keys = (record.dynamodb.keys if record.dynamodb else None) or {}
    pk, sk = keys.get("pk"), keys.get("sk")
    if not (
        isinstance(pk, str) and isinstance(sk, str) and pk.startswith("EXEC#") and sk.startswith("WAVE#")
    ):
        logger.error("stream record names no wave; ignored", extra={"eventId": record.event_id, "keys": keys})
        metrics_count("MalformedEvents")
        return
    logger.append_keys(executionId=pk.removeprefix("EXEC#"), waveNumber=sk.removeprefix("WAVE#").lstrip("0"))
    try:
        outcome = services().reconciler.follow_up(WaveKey(pk, sk))
    except PermanentError as error:  # retrying cannot help; the sweep retries after a fix
        logger.error("follow-up failed permanently", extra={"error": str(error)})
        metrics_count("PermanentErrors")
        return
    except TemporaryError as error:  # the record is reported failed: the stream retries from it
        logger.warning("follow-up failed temporarily; retried", extra={"error": str(error)})
        metrics_count("TemporaryErrors")
        raise
    logger.info("wave followed up", extra={"outcome": outcome.value})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=follow_up, processor=processor, context=context
    )
