"""I8, bad input is harmless: a fixed corpus and Hypothesis mutations, through the real handlers.

Every input goes into an unmodified Lambda handler on one embedded stack (moto + the DRS fake)
that holds a real execution, so there is state to damage: `reconcile` gets DRS events, `read`
and `start` get API Gateway (payload 2.0) requests. An input is *rejected cleanly* when
- reconcile: no exception escapes (an escaped exception is a Lambda retry, i.e. a crash loop) and
  it answers `{"outcome": "rejected", "problems": [...]}` without any AWS call, or — for a
  well-formed event about a job we do not hold — the explicit no-op `{"outcome": "unknown_job"}`
  after one DynamoDB Query and nothing else;
- read/start: a 4xx (never 2xx, never 5xx) whose body is a JSON error document with a message,
  after at most read-only AWS calls (Query, DescribeSourceServers);
- and in both cases no DynamoDB write, no DRS call but DescribeSourceServers, no event
  published, and the table byte-for-byte as before: scanned after every input that made any
  AWS call, and after every test.
The corpus (events/bad/drs-events.json, events/bad/api-requests.json) names why each input is
bad. Its strings may hold `{{jobId}}`, `{{sourceServerId}}`, `{{executionId}}` and
`{{idleServerId}}` (the stack's real ones) and, to keep the files small, a few macros:
`{"$repeat": s, "times": n}` (a string or list repeated), `{"$concat": [...]}`,
`{"$nest": n, "leaf": v, "as": "object"|"array"}` and `{"$many": n, "prefix": p, "value": v,
"with": {...}}` (an object with n extra keys p0, p1, ...).

Hypothesis mutates a valid event or request, derandomized (the same inputs on every run). Inputs
are counted once each by a hash of their canonical JSON; the last test checks the totals and
records them with `record("bad_input", ...)`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.lambda_events import http_event
from local.stack import LocalStack, snapshot
from tests.conftest import dynamodb_writes, post_plan
from tests.reliability.figures import record

CORPUS = Path(__file__).resolve().parents[2] / "events" / "bad"
LAUNCH_RESULT = "DRS Source Server Launch Result"
UNKNOWN_JOB = "drsjob-UnknownJob0000000"
# AWS calls a refusal may make: it may look (is the job/execution ours, does DRS know the
# servers) but never write, start or publish.
READS = {"dynamodb:Query", "drs:DescribeSourceServers"}
DRS_READS = {"DescribeSourceServers"}
MAX_ERROR_BYTES = 16 * 1024
SLOW_OK = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]


def fuzz(examples: int) -> settings:
    """Deterministic (derandomized, no example database) and with no per-example deadline."""
    return settings(
        max_examples=examples, derandomize=True, database=None, deadline=None, suppress_health_check=SLOW_OK
    )


# -- the stack, and what counts ------------------------------------------------------------------


@dataclass
class Tally:
    seen: set[str] = field(default_factory=set)
    clean: set[str] = field(default_factory=set)
    by_kind: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    http_5xx: int = 0
    state_changes: int = 0
    escaped: int = 0
    families: set[str] = field(default_factory=set)


@dataclass
class World:
    stack: LocalStack
    names: dict[str, str]
    baseline: str
    tally: Tally = field(default_factory=Tally)


def _table(stack: LocalStack) -> str:
    return json.dumps(sorted(snapshot(stack), key=lambda i: json.dumps(i, sort_keys=True)), sort_keys=True)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One stack for the module, with a real execution in flight (wave 1 LAUNCHING, wave 2
    PENDING) and a registered server no job uses (so a plan naming it would really start)."""
    with LocalStack(log_level="CRITICAL") as stack:
        # IAM on for the whole module: a hostile input must not lead a function to a call its
        # role would not allow (counted as the fault layer's `access_denied`, which must stay 0)
        stack.faults.enforce_iam = True
        posted = post_plan(stack, [["web-1", "web-2"], ["db-1"]], name="bad-input target")
        first = posted["waves"][0]
        names = {
            "executionId": posted["executionId"],
            "jobId": first["jobId"],
            "sourceServerId": first["servers"][0]["sourceServerId"],
            "idleServerId": stack.add_servers(["idle-1"])[0],
        }
        yield World(stack, names, _table(stack))


@pytest.fixture(autouse=True)
def table_unchanged(world: World) -> Iterator[None]:
    """After each test, the whole table byte for byte (each input that made an AWS call was
    also checked on its own)."""
    yield
    if _table(world.stack) != world.baseline:
        world.tally.state_changes += 1
        pytest.fail("the table changed")


def fingerprint(kind: str, payload: Any) -> str:
    text = json.dumps([kind, payload], sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def expand(value: Any, names: dict[str, str]) -> Any:
    """A corpus value with its macros and `{{placeholders}}` expanded."""
    if isinstance(value, str):
        return re.sub(r"\{\{(\w+)\}\}", lambda m: names.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [expand(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    keys = set(value)
    if keys == {"$repeat", "times"}:
        return expand(value["$repeat"], names) * value["times"]
    if keys == {"$concat"}:
        return "".join(expand(part, names) for part in value["$concat"])
    if keys == {"$nest", "leaf", "as"}:
        nested = expand(value["leaf"], names)
        for _ in range(value["$nest"]):
            nested = {"a": nested} if value["as"] == "object" else [nested]
        return nested
    if keys == {"$many", "prefix", "value", "with"}:
        many = expand(value["with"], names)
        many.update({f"{value['prefix']}{i}": expand(value["value"], names) for i in range(value["$many"])})
        return many
    return {expand(k, names): expand(v, names) for k, v in value.items()}


def load(name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((CORPUS / name).read_text())
    return entries


class Watch:
    """What one input did: AWS calls, DRS fake calls, published events, the table."""

    def __init__(self, world: World) -> None:
        self.world = world
        world.stack.counter.reset()
        self.fake_mark = len(world.stack.fake.calls)
        self.published = len(world.stack.published)

    def damage(self) -> tuple[dict[str, int], list[str]]:
        """The AWS calls made, and every sign of a state change (empty when none)."""
        stack = self.world.stack
        calls = dict(stack.counter.calls)
        signs = []
        if dynamodb_writes(stack):
            signs.append(f"DynamoDB writes: {calls}")
        drs = [name for name, _ in stack.fake.calls[self.fake_mark :]]
        if set(drs) - DRS_READS:
            signs.append(f"DRS calls: {drs}")
        if len(stack.published) != self.published:
            signs.append("an event was published")
        if calls and _table(stack) != self.world.baseline:  # no AWS call: the table is checked per test
            signs.append("the table changed")
        return calls, signs


def account(world: World, kind: str, payload: Any, failure: str | None, *, status: int | None = None) -> None:
    key = fingerprint(kind.split("/", maxsplit=1)[0], payload)
    tally = world.tally
    if key not in tally.seen:
        tally.seen.add(key)
        tally.by_kind[kind] += 1
    if failure is None:
        tally.clean.add(key)
    if status is not None and status >= 500:
        tally.http_5xx += 1


# -- one DRS event -----------------------------------------------------------------------------------


def check_event(world: World, kind: str, event: Any, expect: str | None = None) -> str | None:
    """Deliver one bad event to `reconcile`; return why it was not rejected cleanly, or None."""
    watch = Watch(world)
    try:
        result = world.stack.invoke("reconcile", event)
    except Exception as error:
        world.tally.escaped += 1
        result = {"outcome": f"raised {type(error).__name__}: {error}"}
    calls, signs = watch.damage()
    world.tally.state_changes += bool(signs)
    failure = "; ".join(signs) or None
    outcome = result.get("outcome") if isinstance(result, dict) else None
    world.tally.outcomes[f"reconcile:{outcome}"] += 1
    if outcome == "rejected":
        problems = result.get("problems")
        if not problems or not all(isinstance(p, str) and p for p in problems):
            failure = f"rejected without clear problems: {result}"
        elif calls:
            failure = f"rejected after AWS calls {calls}"
    elif outcome == "unknown_job":
        if calls != {"dynamodb:Query": 1}:
            failure = f"unknown_job after AWS calls {calls}"
    else:
        failure = f"not rejected: {str(result)[:300]}"
    if failure is None and expect is not None and outcome != expect:
        failure = f"expected {expect}, got {outcome}"
    account(world, kind, event, failure)
    return failure


# -- one API request -------------------------------------------------------------------------------

_ITEM = re.compile(r"/executions/([^/]+)(?:/(resume|cancel))?")


def request_event(request: dict[str, Any]) -> dict[str, Any]:
    """An API Gateway payload 2.0 event for a request dict (function, method, path, headers,
    query, body or json, isBase64Encoded)."""
    match = _ITEM.fullmatch(request["path"])
    parameters = {"executionId": match.group(1)} if match else None
    body = json.dumps(request["json"]) if "json" in request else request.get("body")
    event = http_event(
        request["method"],
        request["path"],
        body=body,
        headers=request.get("headers"),
        route=request.get("route", "$default"),
        path_parameters=parameters,
        query=request.get("query", ""),
    )
    if "isBase64Encoded" in request:
        event["isBase64Encoded"] = request["isBase64Encoded"]
    return event


def _content_type(headers: dict[str, str]) -> str:
    return next((v for k, v in headers.items() if k.lower() == "content-type"), "")


def check_request(world: World, kind: str, request: dict[str, Any], expect: int | None = None) -> str | None:
    """Send one bad request to its function; return why it was not refused cleanly, or None."""
    watch = Watch(world)
    status = 500  # an exception escaping the handler is a Lambda error: API Gateway answers 500
    try:
        reply = world.stack.invoke(request["function"], request_event(request))
        status = int(reply["statusCode"])
    except Exception as error:
        world.tally.escaped += 1
        reply = {"body": f"raised {type(error).__name__}: {error}"}
    calls, signs = watch.damage()
    world.tally.state_changes += bool(signs)
    world.tally.outcomes[f"http:{status}"] += 1
    failure = "; ".join(signs) or None
    text = reply.get("body") or ""
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not 400 <= status < 500:
        failure = f"answered {status}: {text[:300]}"
    elif (
        not isinstance(document, dict)
        or not isinstance(document.get("message"), str)
        or not document["message"]
    ):
        failure = f"{status} without a JSON error message: {text[:300]}"
    elif not _content_type(reply.get("headers") or {}).startswith("application/json"):
        failure = f"{status} error not labelled application/json: {reply.get('headers')}"
    elif len(text.encode()) > MAX_ERROR_BYTES:
        failure = f"{status} error document of {len(text.encode())} bytes"
    elif set(calls) - READS:
        failure = f"refused after AWS calls {calls}"
    elif expect is not None and status != expect:
        failure = f"expected {expect}, got {status}: {text[:300]}"
    failure = "; ".join(signs) or failure
    account(world, kind, request, failure, status=status)
    return failure


# -- 1. the fixed corpus -----------------------------------------------------------------------------


def test_corpus_drs_events_are_rejected_cleanly(world: World) -> None:
    # Given every malformed or hostile DRS event of the corpus
    entries = load("drs-events.json")
    assert len({e["name"] for e in entries}) == len(entries) >= 200

    # When each is delivered to the reconcile function
    failures = []
    for entry in entries:
        event = expand(entry["event"], world.names)
        failure = check_event(world, "drs_event/corpus", event, entry["expect"])
        if failure:
            failures.append(f"{entry['name']}: {failure}")

    # Then each is rejected (or, well formed about a job we do not hold, a no-op) and nothing changed
    world.tally.families.add("drs_event/corpus")
    assert failures == []


def test_corpus_api_requests_are_refused_cleanly(world: World) -> None:
    # Given every malformed or hostile API request of the corpus
    entries = load("api-requests.json")
    assert len({e["name"] for e in entries}) == len(entries) >= 400

    # When each is sent to its function
    failures = []
    for entry in entries:
        request = expand(entry["request"], world.names)
        failure = check_request(world, "http/corpus", request, entry.get("expect"))
        if failure:
            failures.append(f"{entry['name']}: {failure}")

    # Then each gets a 4xx JSON error and nothing changed
    world.tally.families.add("http/corpus")
    assert failures == []


# -- 2. Hypothesis: DRS events ---------------------------------------------------------------------

HOSTILE = [
    "",
    " ",
    "\x00",
    "\n",
    "\r\n",
    "\t",
    "\x1b[31m",
    "\x7f",
    "\u0085",
    "\u202e",
    "\u200b",
    "\ufeff",
    "\U0001f4a5",
    "\ud800",
    "\u0430",
    "\uff11",
    "\u00e9",
    "../../etc/passwd",
    "..%2F..%2F",
    "%00",
    "' OR '1'='1",
    '" OR ""="',
    "'; DROP TABLE waves; --",
    '{"$ne": null}',
    "$where",
    "${jndi:ldap://x/a}",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "null",
    "undefined",
    "NaN",
    "-1",
    "0",
    "1e309",
    "x" * 5000,
]
hostile_text = st.sampled_from(HOSTILE) | st.text(max_size=40)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | hostile_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=10,
)
non_strings = json_values.filter(lambda v: not isinstance(v, str))
non_dicts = json_values.filter(lambda v: not isinstance(v, dict))


@st.composite
def spoiled(draw: st.DrawFn, valid: str, alphabet: str) -> str:
    """`valid` with one change that cannot leave it valid: something inserted, a character
    replaced by one outside `alphabet`, or cut short."""
    how = draw(st.sampled_from(["insert", "replace", "cut"]))
    at = draw(st.integers(min_value=0, max_value=len(valid) - 1))
    if how == "insert":
        return valid[:at] + draw(hostile_text.filter(bool)) + valid[at:]
    if how == "replace":
        other = draw(
            st.characters().filter(lambda c: c not in alphabet) | st.sampled_from(["\x00", "\u202e", "/"])
        )
        return valid[:at] + other + valid[at + 1 :]
    return valid[:at]


ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ENVELOPE = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
DETAIL = ["state", "job-id", "is-drill"]
Mutation = tuple[tuple[str, ...], Any]
_DROP = object()


def _is_drill_word(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("true", "false")


def invalidating(job_id: str) -> st.SearchStrategy[Mutation]:
    """One change that makes a Launch Result event invalid whatever else is true of it."""
    return st.one_of(
        st.sampled_from([((f,), _DROP) for f in ENVELOPE] + [(("detail", f), _DROP) for f in DETAIL]),
        st.tuples(
            st.sampled_from([(f,) for f in ["version", "id", "detail-type", "source", "account", "region"]]),
            non_strings,
        ),
        st.tuples(st.sampled_from([("detail", "state"), ("detail", "job-id")]), non_strings),
        st.tuples(st.just(("time",)), json_values.filter(lambda v: not isinstance(v, str | int | float))),
        st.tuples(st.just(("resources",)), non_strings.filter(lambda v: not isinstance(v, list))),
        st.tuples(st.just(("resources",)), st.lists(non_strings, min_size=1, max_size=3)),
        st.tuples(st.just(("detail",)), non_dicts),
        st.tuples(st.just(("detail", "job-id")), spoiled(job_id, ALNUM) | hostile_text),
        st.tuples(
            st.just(("detail", "is-drill")),
            json_values.filter(lambda v: not isinstance(v, bool) and not _is_drill_word(v)),
        ),
        st.tuples(
            st.just(("source",)), (spoiled("aws.drs", "") | hostile_text).filter(lambda s: s != "aws.drs")
        ),
        st.tuples(
            st.just(("detail-type",)),
            (spoiled(LAUNCH_RESULT, "") | hostile_text).filter(lambda s: s != LAUNCH_RESULT),
        ),
        st.tuples(st.just(("detail", "state")), st.just("") | st.text(min_size=65, max_size=300)),
    )


def harmless(job_id: str) -> st.SearchStrategy[Mutation]:
    """A hostile change to a field that does not pick the wave (the event stays a hint)."""
    return st.one_of(
        st.tuples(st.sampled_from([(f,) for f in ["version", "id", "account", "region"]]), hostile_text),
        st.tuples(st.just(("detail", "state")), hostile_text.filter(lambda s: 0 < len(s) <= 64)),
        st.tuples(st.just(("resources",)), st.lists(hostile_text, max_size=4)),
        st.tuples(st.tuples(st.just("detail"), hostile_text.filter(lambda k: k not in DETAIL)), json_values),
    )


def base_event(job_id: str, source_server_id: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "7d0c7a1e-5c3f-4d6b-9a61-0b9e2f6f1c2a",
        "detail-type": LAUNCH_RESULT,
        "source": "aws.drs",
        "account": "123456789012",
        "time": "2026-11-26T10:15:30Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:drs:us-east-1:123456789012:source-server/{source_server_id}"],
        "detail": {"state": "RECOVERY_LAUNCH_SUCCEEDED", "job-id": job_id, "is-drill": "TRUE"},
    }


def mutate(event: dict[str, Any], mutations: list[Mutation]) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    for path, value in mutations:
        parent: Any = changed
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue  # its parent was dropped or replaced by an earlier change
        if value is _DROP:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = copy.deepcopy(value)
    return changed


def _job(world: World) -> str:
    return world.names["jobId"]


@fuzz(320)
@given(data=st.data())
def test_fuzzed_events_about_our_job_are_rejected_before_any_aws_call(
    world: World, data: st.DataObject
) -> None:
    # Given a Launch Result about the execution's real job with, sometimes, hostile changes that
    # alone would be harmless, then 1 to 3 invalidating changes
    job = _job(world)
    harmless_first = data.draw(st.lists(harmless(job), max_size=2))
    changes = harmless_first + data.draw(st.lists(invalidating(job), min_size=1, max_size=3))
    event = mutate(base_event(job, world.names["sourceServerId"]), changes)

    # When it is delivered / Then it is rejected with its problems, before any AWS call
    world.tally.families.add("drs_event/our_job")
    failure = check_event(world, "drs_event/about_our_job", event, "rejected")
    assert failure is None, failure


@fuzz(260)
@given(data=st.data())
def test_fuzzed_events_about_an_unknown_job_are_rejected_or_ignored(
    world: World, data: st.DataObject
) -> None:
    # Given a Launch Result about a job we do not hold, with 1 to 4 hostile changes of any kind
    changes = data.draw(st.lists(invalidating(UNKNOWN_JOB) | harmless(UNKNOWN_JOB), min_size=1, max_size=4))
    event = mutate(base_event(UNKNOWN_JOB, "s-UnknownServer0000"), changes)

    # When it is delivered / Then rejected, or (still well formed) unknown_job after one Query
    world.tally.families.add("drs_event/unknown_job")
    failure = check_event(world, "drs_event/about_an_unknown_job", event)
    assert failure is None, failure


@fuzz(60)
@given(event=non_dicts)
def test_fuzzed_non_objects_are_rejected(world: World, event: Any) -> None:
    world.tally.families.add("drs_event/not_an_object")
    failure = check_event(world, "drs_event/not_an_object", event, "rejected")
    assert failure is None, failure


# -- 3. Hypothesis: API requests -------------------------------------------------------------------

HEX = "0123456789abcdef-"
header_names = st.sampled_from(
    ["if-none-match", "x-forwarded-for", "user-agent", "x-junk", "cookie", "authorization"]
)
hostile_headers = st.dictionaries(
    header_names | st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
    hostile_text,
    max_size=3,
)
hostile_query = (
    st.just("")
    | st.sampled_from(["a=%00", "%ZZ", "executionId=../../x", "__proto__[a]=1"])
    | st.text(max_size=30)
)


@st.composite
def execution_ids(draw: st.DrawFn, real: str) -> str:
    """Anything but the real execution id: hostile strings, the real id spoiled, or
    well-formed UUID4s we do not hold."""
    return draw(
        st.one_of(
            hostile_text,
            spoiled(real, HEX),
            st.just(real.upper()),
            st.uuids(version=4).map(str),
            st.uuids().map(str),
        ).filter(lambda i: i != real)
    )


@fuzz(260)
@given(data=st.data())
def test_fuzzed_execution_ids_are_refused(world: World, data: st.DataObject) -> None:
    # Given any execution id but the real one, on GET, resume or cancel, with odd headers/query
    execution_id = data.draw(execution_ids(world.names["executionId"]))
    operation = data.draw(st.sampled_from(["get", "resume", "cancel"]))
    request: dict[str, Any] = {
        "function": "read" if operation == "get" else "start",
        "method": "GET" if operation == "get" else "POST",
        "path": f"/executions/{execution_id}" + ("" if operation == "get" else f"/{operation}"),
        "headers": data.draw(hostile_headers),
        "query": data.draw(hostile_query),
    }

    # When it is sent / Then 400 (malformed), 404 (not ours or no such route), never anything else
    world.tally.families.add("http/execution_id")
    failure = check_request(world, "http/execution_id", request)
    assert failure is None, failure


METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD", "CONNECT", "get", "post", ""]
SERVED = {
    ("read", "GET", "item"),
    ("read", "GET", "collection"),
    ("start", "POST", "collection"),
    ("start", "POST", "resume"),
    ("start", "POST", "cancel"),
}


@fuzz(200)
@given(data=st.data())
def test_fuzzed_methods_are_refused(world: World, data: st.DataObject) -> None:
    # Given the real execution's paths, with any method a function does not serve there
    real = world.names["executionId"]
    paths = {
        "item": f"/executions/{real}",
        "collection": "/executions",
        "resume": f"/executions/{real}/resume",
        "cancel": f"/executions/{real}/cancel",
    }
    where = data.draw(st.sampled_from(sorted(paths)))
    function = data.draw(st.sampled_from(["read", "start"]))
    method = data.draw(
        st.sampled_from(METHODS)
        | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", max_size=8)
        | st.text(max_size=8)
    )
    if (function, method, where) in SERVED:
        method = method.lower()  # the served method in the wrong case is no longer served
    request = {"function": function, "method": method, "path": paths[where], "json": data.draw(json_values)}

    # When it is sent / Then a 4xx and nothing changed
    world.tally.families.add("http/method")
    failure = check_request(world, "http/method", request)
    assert failure is None, failure


KNOWN_FIELDS = {"name", "isDrill", "stopOnPartial", "waves"}
KNOWN_WAVE_FIELDS = {"name", "sourceServerIds", "pauseBeforeWave"}


def valid_plan(idle: str) -> dict[str, Any]:
    return {"name": "drill", "isDrill": True, "waves": [{"name": "wave 1", "sourceServerIds": [idle]}]}


def bad_names() -> st.SearchStrategy[Any]:
    control = st.sampled_from(["\x00", "\n", "\x1b", "\x7f", "\u0085", "\u202e", "\u2066"])
    return st.one_of(
        st.just(""),
        st.text(min_size=129, max_size=200),
        st.tuples(st.text(max_size=20), control, st.text(max_size=20)).map("".join),
        non_strings,
    )


def plan_mutations(idle: str) -> st.SearchStrategy[Mutation]:
    """One change that makes a plan invalid whatever else is true of it."""
    wave = ("waves", 0)
    return st.one_of(
        st.sampled_from([(("name",), _DROP), (("isDrill",), _DROP), (("waves",), _DROP)]),
        st.sampled_from([((*wave, "name"), _DROP), ((*wave, "sourceServerIds"), _DROP)]),
        st.tuples(st.sampled_from([("name",), (*wave, "name")]), bad_names()),
        st.tuples(
            st.sampled_from([("isDrill",), ("stopOnPartial",), (*wave, "pauseBeforeWave")]),
            json_values.filter(lambda v: not isinstance(v, bool)),
        ),
        st.tuples(st.just(("waves",)), json_values.filter(lambda v: not isinstance(v, list)) | st.just([])),
        st.tuples(st.just(wave), non_dicts),
        st.tuples(
            st.just((*wave, "sourceServerIds")),
            json_values.filter(lambda v: not isinstance(v, list)) | st.just([]),
        ),
        st.tuples(st.just((*wave, "sourceServerIds", 0)), spoiled(idle, ALNUM) | hostile_text | non_strings),
        st.tuples(st.just((*wave, "sourceServerIds")), st.just([idle, idle])),
        st.tuples(
            st.text(max_size=20).filter(lambda k: k not in KNOWN_FIELDS).map(lambda k: (k,)), json_values
        ),
        st.tuples(
            st.text(max_size=20).filter(lambda k: k not in KNOWN_WAVE_FIELDS).map(lambda k: (*wave, k)),
            json_values,
        ),
    )


def mutate_plan(plan: dict[str, Any], mutations: list[Mutation]) -> dict[str, Any]:
    changed = copy.deepcopy(plan)
    for path, value in mutations:
        parent: Any = changed
        for key in path[:-1]:
            if isinstance(parent, dict):
                parent = parent.get(key)
            elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
                parent = parent[key]
            else:
                parent = None
        last = path[-1]
        if isinstance(parent, dict) and isinstance(last, str):  # (a JSON object's keys are strings)
            if value is _DROP:
                parent.pop(last, None)
            else:
                parent[last] = copy.deepcopy(value)
        elif isinstance(parent, list) and isinstance(last, int) and last < len(parent) and value is not _DROP:
            parent[last] = copy.deepcopy(value)
    return changed


@fuzz(300)
@given(data=st.data())
def test_fuzzed_bodies_are_refused(world: World, data: st.DataObject) -> None:
    # Given POST /executions with a body that is not a valid plan: a valid plan spoiled by 1 to 3
    # invalidating changes, any other JSON, random text, or random bytes sent as base64
    idle = world.names["idleServerId"]
    shape = data.draw(st.sampled_from(["spoiled-plan", "any-json", "text", "bytes"]))
    request: dict[str, Any] = {
        "function": "start",
        "method": "POST",
        "path": "/executions",
        "route": "POST /executions",
    }
    if shape == "spoiled-plan":
        changes = data.draw(st.lists(plan_mutations(idle), min_size=1, max_size=3))
        request["json"] = mutate_plan(valid_plan(idle), changes)
    elif shape == "any-json":
        request["json"] = data.draw(json_values)
    elif shape == "text":
        request["body"] = data.draw(st.text(max_size=200))
    else:
        request["body"] = base64.b64encode(data.draw(st.binary(max_size=200))).decode()
        request["isBase64Encoded"] = True
    if data.draw(st.booleans()):
        request["headers"] = data.draw(hostile_headers.filter(lambda h: "content-type" not in h))

    # When it is sent / Then 400 (or 413/415) with the problems, nothing written or started
    world.tally.families.add("http/body")
    failure = check_request(world, "http/body", request)
    assert failure is None, failure


def _is_json_media(value: str) -> bool:
    return value.split(";", 1)[0].strip().lower() == "application/json"


@fuzz(120)
@given(data=st.data())
def test_valid_plans_with_a_lying_envelope_are_refused(world: World, data: st.DataObject) -> None:
    # Given a valid plan sent with a content-type that is not JSON, a base64 flag that lies, or
    # a key repeated (parsers disagree on which value counts)
    plan = valid_plan(world.names["idleServerId"])
    text = json.dumps(plan)
    lie = data.draw(st.sampled_from(["content-type", "base64-flag", "duplicate-key"]))
    request: dict[str, Any] = {"function": "start", "method": "POST", "path": "/executions", "body": text}
    expect = 400
    if lie == "content-type":
        media = st.sampled_from(
            ["text/plain", "application/xml", "text/json", "application/x-www-form-urlencoded"]
        )
        request["headers"] = {
            "content-type": data.draw((media | hostile_text).filter(lambda c: not _is_json_media(c)))
        }
        expect = 415
    elif lie == "base64-flag":
        request["isBase64Encoded"] = True
        request["body"] = data.draw(
            st.sampled_from([text, json.dumps(plan, indent=2), json.dumps(plan, separators=(",", ":"))])
        )
    else:
        key = data.draw(st.sampled_from(["name", "isDrill", "waves", "stopOnPartial"]))
        first = json.dumps(key) + ": " + json.dumps(data.draw(json_values)) + ", "
        # a key the plan has is repeated by adding it once more; one it lacks, by adding it twice
        request["body"] = "{" + first * (1 if key in plan else 2) + text[1:]

    # When it is sent / Then refused with 415 or 400, nothing written or started
    world.tally.families.add("http/lying_envelope")
    failure = check_request(world, "http/lying_envelope", request, expect)
    assert failure is None, failure


# -- 4. hostile but harmless: ignored by a valid read, and by the sweep ----------------------------


@pytest.mark.parametrize(
    "headers, query",
    [
        ({"if-none-match": "*"}, ""),
        ({"if-none-match": "W/*"}, ""),
        ({"if-none-match": ""}, ""),
        ({"if-none-match": ",,,"}, ""),
        ({"if-none-match": '"' + "e" * 100_000 + '"'}, ""),
        ({"if-none-match": ", ".join(['"t"'] * 10_000)}, ""),
        ({"if-none-match": '"\x00"'}, ""),
        ({"x-junk": "j" * 100_000}, ""),
        ({"content-type": "text/plain", "content-length": "-1"}, ""),
        ({}, "a=%00&b=%ZZ&executionId=../../etc"),
        ({}, "&".join(["a=1"] * 1000)),
    ],
)
def test_odd_headers_and_query_strings_on_a_valid_read_are_ignored(
    world: World, headers: dict[str, str], query: str
) -> None:
    # Given a GET of the real execution with odd headers or a hostile query string (a valid read:
    # not counted as bad input)
    watch = Watch(world)
    request = {"function": "read", "method": "GET", "path": f"/executions/{world.names['executionId']}"}
    reply = world.stack.invoke("read", request_event({**request, "headers": headers, "query": query}))

    # Then the document (or 304), from one Query and nothing else
    calls, signs = watch.damage()
    assert reply["statusCode"] in (200, 304), reply
    assert calls == {"dynamodb:Query": 1}, calls
    assert signs == []


def test_the_sweep_ignores_its_input(world: World) -> None:
    # Given the sweep's answer to its real schedule event (state settled by that first sweep)
    stack = world.stack
    schedule = json.loads((CORPUS.parent / "schedule" / "sweep.json").read_text())
    expected = stack.invoke("sweep", schedule)
    world.baseline = _table(stack)

    # When it is invoked with hostile events instead / Then the same answer and no change
    for event in [None, [], "garbage", {}, {"detail": {"job-id": "' OR 1=1"}}, {"source": "aws.drs"}]:
        watch = Watch(world)
        assert stack.invoke("sweep", event) == expected
        _, signs = watch.damage()
        assert [s for s in signs if not s.startswith("DRS calls")] == []  # it reads DRS: its job
        assert not {name for name, _ in stack.fake.calls[watch.fake_mark :]} - {"DescribeJobs", *DRS_READS}


# -- 5. the totals --------------------------------------------------------------------------------

FAMILIES = {
    "drs_event/corpus",
    "http/corpus",
    "drs_event/our_job",
    "drs_event/unknown_job",
    "drs_event/not_an_object",
    "http/execution_id",
    "http/method",
    "http/body",
    "http/lying_envelope",
}


def test_every_bad_input_was_rejected_cleanly(world: World) -> None:
    tally = world.tally
    if tally.families != FAMILIES:
        pytest.skip(f"the totals need the whole module; missing {sorted(FAMILIES - tally.families)}")
    figures = {
        "bad_inputs": len(tally.seen),
        "bad_inputs_rejected": len(tally.clean),
        "http_5xx": tally.http_5xx,
        "state_changes": tally.state_changes,
        "escaped_exceptions": tally.escaped,
        "by_kind": dict(tally.by_kind),
        "outcomes": dict(tally.outcomes),
        "iam_refusals": world.stack.faults.fired["access_denied"],
        "iam_refused_calls": sorted(
            op for (kind, op) in world.stack.faults.fired_by_operation if kind == "access_denied"
        ),
    }
    record("bad_input", figures)
    assert len(tally.seen) >= 1000, figures
    assert len(tally.clean) == len(tally.seen), figures
    assert tally.http_5xx == 0, figures
    assert tally.state_changes == 0, figures
    assert tally.escaped == 0, figures
    assert figures["iam_refusals"] == 0, figures
