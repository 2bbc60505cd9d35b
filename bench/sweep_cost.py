"""Section "sweep": what one scheduled sweep costs against the number of waves in flight, and
proof that finished waves cost it nothing.

The sweep finds its work through the sparse `inflight` index, so its requests should follow the
in-flight count alone, however many finished waves the table holds. This section sweeps 10, 100
and 1,000 in-flight waves (each a real DRS job whose one server is IN_PROGRESS) on the live local
stack (moto and the DRS simulator over HTTP, default latencies) in a table with no finished wave,
and the same in-flight waves in a table that also holds 10,000 finished ones; the two must make the
very same requests. Items are cloned from records the handlers themselves wrote (a real POST and
reconcile), each clone validated against the record schemas before it is stored. moto's Query
reads the whole table where DynamoDB reads one partition, so times among finished waves are moto's
and the in-flight-only table gives the time per sweep.
"""

from __future__ import annotations

import copy
import os
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from bench.reconcile_cost import RequestLog, counted_live_stack, partition, post_wave
from bench.section import Options, Section, log
from bench.stats import median, ms, ratio
from local.bus import SCHEDULED_EVENT
from local.drs_sim import SimConfig
from local.lambda_events import launch_result
from local.live import AMI, REGION, LiveStack
from local.serverless import table_properties
from reconciler import runtime
from reconciler.observe import job_tags
from reconciler.store import EXECUTION_SK, WaveKey, execution_pk, inflight_shard, wave_key
from schemas.records import ExecutionRecord, WaveRecord

SIZES = {"smoke": (5,), "default": (10, 100, 1000), "full": (10, 100, 1000)}
# Each size runs twice, in a table of only its in-flight waves and among 10,000 finished ones.
# The requests must be equal; the time differs on moto because its index Query sorts every item
# of the table (DynamoDB reads only the index's partition; local.moto_speed fixes the base-table
# Query, where the same cost made a sweep of 1,000 take ~7 minutes).
AMONG_FINISHED = {"smoke": (5,), "default": (10, 100, 1000), "full": (10, 100, 1000)}
FINISHED = {"smoke": 50, "default": 10_000, "full": 10_000}
WAVES_PER_FINISHED_EXECUTION = 10
ONE_REPEAT_FROM = {"smoke": 1, "default": 1000, "full": 10**9}  # sizes timed once (~1 min a sweep)
TABLE, CONTROL = "bench-sweep", "bench-sweep-control"
FROZEN = replace(SimConfig(), job_start=(1e6, 1e6))  # jobs move only when we move them
Item = dict[str, Any]


class Tables:
    """Writes cloned items with boto3's batch writer, through a session the counters never see."""

    def __init__(self, stack: LiveStack) -> None:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self._dynamodb = session.resource("dynamodb", endpoint_url=stack.moto.endpoint_url)

    def put(self, table: str, items: list[Item]) -> None:
        with self._dynamodb.Table(table).batch_writer() as batch:
            for item in items:
                batch.put_item(Item=item)

    def delete(self, table: str, items: list[Item]) -> None:
        with self._dynamodb.Table(table).batch_writer() as batch:
            for item in items:
                batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})


def written(stack: LiveStack, execution_id: str, job_id: str, sid: str) -> list[Item]:
    """Deliver one Launch Result event and return the execution's items as the handlers left them."""
    answer = stack.bus.invoke("reconcile", launch_result(job_id, sid))
    if answer.get("outcome") != "written":
        raise RuntimeError(f"template reconcile answered {answer}")
    stack.bus.wait_idle()  # a wave it ended is followed up (event, finish) from the table's stream
    deserializer = TypeDeserializer()
    return [
        {k: deserializer.deserialize(v) for k, v in raw.items()} for raw in partition(stack, execution_id)
    ]


def templates(stack: LiveStack, tables: Tables) -> tuple[list[Item], list[Item]]:
    """(in-flight, finished) one-wave executions as our handlers wrote them; taken out of the
    table afterwards so that only clones are counted."""
    sim = stack.sim
    sid = sim.add_source_server(hostname="template-inflight")
    execution_id, job_id = post_wave(stack, [sid], "template-inflight")
    sim.set_job_status(job_id, "STARTED")
    sim.set_launch_status(job_id, sid, "IN_PROGRESS")
    inflight = written(stack, execution_id, job_id, sid)

    sid = sim.add_source_server(hostname="template-finished")
    execution_id, job_id = post_wave(stack, [sid], "template-finished")
    sim.set_job_status(job_id, "STARTED")
    instance = stack.ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="m5.large")
    ec2 = instance["Instances"][0]
    sim.launch_server(job_id, sid, ec2_instance_id=ec2["InstanceId"], private_ip=ec2.get("PrivateIpAddress"))
    sim.set_job_status(job_id, "COMPLETED")
    finished = written(stack, execution_id, job_id, sid)
    if any("inflight" in item for item in finished) or not all("inflight" in item for item in inflight):
        raise RuntimeError("the templates are not one in-flight and one finished execution")
    tables.delete(stack.table_name, inflight + finished)
    return inflight, finished


def clone(
    template: list[Item], execution_id: str, waves: Sequence[tuple[int, str, str | None]]
) -> list[Item]:
    """An execution like `template` with its own id and waves (number, job id, source server id)."""
    execution = copy.deepcopy(next(i for i in template if i["sk"] == EXECUTION_SK))
    wave = next(i for i in template if i["sk"] != EXECUTION_SK)
    pk = execution_pk(execution_id)
    execution.update(pk=pk, executionId=execution_id, waveCount=len(waves))
    if "inflight" in execution:
        execution["inflight"] = inflight_shard(WaveKey(pk, EXECUTION_SK))
    ExecutionRecord.model_validate(execution)
    items = [execution]
    for number, job_id, sid in waves:
        item = copy.deepcopy(wave)
        key = wave_key(execution_id, number)
        item.update(pk=key.pk, sk=key.sk, executionId=execution_id, waveNumber=number, jobId=job_id)
        if sid is not None:
            item["servers"][0].update(sourceServerId=sid, hostname=f"host-{sid}")
        if "inflight" in item:
            item["inflight"] = inflight_shard(key)
        WaveRecord.model_validate(item)
        items.append(item)
    return items


def new_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def finished_items(template: list[Item], count: int, rng: random.Random) -> list[Item]:
    items: list[Item] = []
    for _ in range(count // WAVES_PER_FINISHED_EXECUTION):
        waves = [
            (n, f"drsjob-{rng.getrandbits(68):017x}", None)
            for n in range(1, WAVES_PER_FINISHED_EXECUTION + 1)
        ]
        items.extend(clone(template, new_id(rng), waves))
    return items


def inflight_items(stack: LiveStack, template: list[Item], count: int, rng: random.Random) -> list[Item]:
    """`count` one-wave executions, each with a real DRS job whose one server is IN_PROGRESS."""
    items: list[Item] = []
    for _ in range(count):
        sid = stack.sim.add_source_server()
        execution_id = new_id(rng)
        started = stack.sim.start_recovery(
            sourceServers=[{"sourceServerID": sid}], isDrill=True, tags=job_tags(execution_id, 1)
        )
        job_id = started["job"]["jobID"]
        stack.sim.set_job_status(job_id, "STARTED")
        stack.sim.set_launch_status(job_id, sid, "IN_PROGRESS")
        items.extend(clone(template, execution_id, [(1, job_id, sid)]))
    return items


def use_table(name: str) -> None:
    """Point the handlers at another table; their clients are built here, not in a timed sweep."""
    os.environ["TABLE_NAME"] = name
    runtime.reset()
    runtime.services()


def sweep_once(stack: LiveStack, requests: RequestLog) -> dict[str, Any]:
    requests.reset()
    started = time.monotonic()
    report = stack.bus.invoke("sweep", dict(SCHEDULED_EVENT))
    seconds = time.monotonic() - started
    return {
        "seconds": seconds,
        "requests": dict(sorted(requests.calls.items())),
        "index_pages": requests.indexes["inflight"],
        "errors": dict(requests.errors),
        "report": report,
    }


def summary(runs: list[dict[str, Any]], finished: int, inflight: int) -> dict[str, Any]:
    last = runs[-1]
    total = sum(last["requests"].values())
    seconds = median([r["seconds"] for r in runs])
    return {
        "inflight": inflight,
        "finished_waves": finished,
        "requests": last["requests"],
        "total_requests": total,
        "requests_stable": all(r["requests"] == last["requests"] for r in runs),
        "inflight_index_pages": last["index_pages"],
        "requests_per_inflight_wave": round(ratio(total - last["index_pages"], inflight), 2),
        "sweep_ms": ms(seconds),
        "sweep_ms_runs": [ms(r["seconds"]) for r in runs],
        "ms_per_inflight_wave": round(ratio(ms(seconds), inflight), 2),
        "visited": last["report"]["visited"],
        "outcomes": last["report"]["outcomes"],
        "errors": last["report"]["errors"],
        "error_answers": last["errors"],
    }


def measure(stack: LiveStack, requests: RequestLog, table: str, repeat: int) -> list[dict[str, Any]]:
    use_table(table)
    return [sweep_once(stack, requests) for _ in range(repeat)]


def run(options: Options) -> Section:
    section = Section("sweep", "Sweep cost vs in-flight waves (finished waves must cost nothing)")
    rng = random.Random(options.seed)
    finished = FINISHED[options.scale]
    by_inflight: dict[str, Any] = {}
    with counted_live_stack(FROZEN, latency=not options.smoke, table_name=TABLE) as (stack, requests):
        stack.dynamodb.create_table(TableName=CONTROL, **table_properties())
        tables = Tables(stack)
        inflight_template, finished_template = templates(stack, tables)
        log.info("sweep: writing %d finished waves", finished)
        tables.put(TABLE, finished_items(finished_template, finished, rng))
        concurrency = runtime.services().settings.sweep_concurrency
        have = 0
        for size in SIZES[options.scale]:
            log.info("sweep: %d in-flight waves", size)
            added = inflight_items(stack, inflight_template, size - have, rng)
            have = size
            among = size in AMONG_FINISHED[options.scale]
            for table in (TABLE, CONTROL) if among else (CONTROL,):
                tables.put(table, added)
            repeat = 1 if size >= ONE_REPEAT_FROM[options.scale] else options.repeat
            figures = summary(measure(stack, requests, CONTROL, repeat), 0, size)
            figures["repeats"] = repeat
            if among:  # timed once: on moto its time is that of Query scanning the whole table
                figures["among_finished"] = summary(measure(stack, requests, TABLE, 1), finished, size)
                figures["finished_extra_requests"] = (
                    figures["among_finished"]["total_requests"] - figures["total_requests"]
                )
            by_inflight[str(size)] = figures
        use_table(TABLE)
    section.figures = {
        "latency": "none" if options.smoke else "default",
        "finished_waves": finished,
        "sweep_concurrency": concurrency,
        "inflight_wave": "one-wave execution, its DRS job STARTED, its one server IN_PROGRESS",
        "by_inflight": by_inflight,
        "finished_extra_requests": max(
            f["finished_extra_requests"] for f in by_inflight.values() if "among_finished" in f
        ),
    }
    _report(section, finished, by_inflight)
    return section


def _report(section: Section, finished: int, by_inflight: dict[str, Any]) -> None:
    for size, f in by_inflight.items():
        section.row(
            f"sweep, {size} in flight",
            f"{f['total_requests']:,} requests ({f['inflight_index_pages']} index pages + "
            f"{f['requests_per_inflight_wave']} per wave), {f['sweep_ms']:,.0f} ms "
            f"({f['ms_per_inflight_wave']} ms/wave, {f['repeats']} run{'s' if f['repeats'] > 1 else ''})",
        )
        if "among_finished" in f:
            a = f["among_finished"]
            section.row(
                f"sweep, {size} in flight among {finished:,} finished",
                f"{a['total_requests']:,} requests (+{f['finished_extra_requests']}), "
                f"{a['sweep_ms']:,.0f} ms on moto (its index Query sorts every item)",
            )
    among = {s: f for s, f in by_inflight.items() if "among_finished" in f}
    section.target(
        f"sweep requests among {finished:,} finished waves vs none",
        "equal (finished waves cost nothing)",
        ", ".join(f"{s} in flight: +{f['finished_extra_requests']}" for s, f in among.items()),
        all(f["among_finished"]["requests"] == f["requests"] for f in among.values()),
    )
    runs = [*by_inflight.values(), *(f["among_finished"] for f in among.values())]
    per_wave = {f["requests_per_inflight_wave"] for f in runs}
    pages = {f["inflight_index_pages"] for f in runs}
    section.target(
        "sweep requests vs in-flight count",
        "index pages + a constant per in-flight wave; only in-flight items visited, no errors",
        f"{sorted(pages)} index pages + {sorted(per_wave)} per wave",
        len(per_wave) == 1
        and len(pages) == 1
        and all(f["visited"] == 2 * int(f["inflight"]) and not f["errors"] for f in runs),
    )
