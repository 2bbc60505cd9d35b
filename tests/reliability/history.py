"""Jepsen-style per-key histories of DynamoDB reads and writes, and a checker for them (I3, I4).

`Recorder` hooks botocore's event system (on a session, so every client built from it, or on one
client) and logs, for every item it keeps (wave items by default), each strongly consistent read
(GetItem, base-table Query: the version seen) and each write (PutItem, UpdateItem, every Put or
Update of a TransactWriteItems: the version its condition expected, the version it wrote,
accepted or rejected), with the thread and monotonic start/end times of the call. `check` is a
pure function over that history and the items stored at the end: it reports version gaps, lost
updates and stale reads, so a race test can prove the store's version rule from the outside
instead of trusting it.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.store import from_attrs

Key = tuple[str, str]  # (pk, sk)
Guard = Literal["version", "create", "none", "other"]
Outcome = Literal["accepted", "rejected", "cancelled", "failed", "unknown"]
VERSION = "version"
KEY_ATTRIBUTES = ("pk", "sk")

_READS = ("GetItem", "Query")
_WRITES = ("PutItem", "UpdateItem", "TransactWriteItems")
_CLAUSE = re.compile(r"\b(SET|REMOVE|ADD|DELETE)\b", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"^\s*(#?[\w.]+)\s*=\s*(:\w+)\s*$")
_EQUALS = re.compile(r"(#?\w+)\s*=\s*(:\w+)|(:\w+)\s*=\s*(#?\w+)")
_NOT_EXISTS = re.compile(r"attribute_not_exists\s*\(\s*(#?\w+)\s*\)", re.IGNORECASE)


def wave_items(pk: str, sk: str) -> bool:
    return sk.startswith("WAVE#")


def versioned_items(pk: str, sk: str) -> bool:
    """Waves and executions: every item the store writes under the version rule."""
    return pk.startswith("EXEC#")


@dataclass(frozen=True)
class Read:
    key: Key
    version: int | None  # None: the item did not exist
    item: dict[str, Any] | None
    operation: str
    thread: str
    start: float
    end: float


@dataclass(frozen=True)
class Write:
    key: Key
    operation: str
    guard: Guard  # version: `version = :expected`; create: attribute_not_exists; none: blind
    expected: int | None  # the version the condition required (guard == "version")
    version: int | None  # the version written (None: not found in the request)
    outcome: Outcome
    sets: dict[str, Any] | None  # attributes written (plain values); None when not understood
    removes: tuple[str, ...]
    replaces: bool  # a Put replaces the whole item
    thread: str
    start: float
    end: float

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


@dataclass
class History:
    reads: list[Read] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)

    def keys(self) -> set[Key]:
        return {r.key for r in self.reads} | {w.key for w in self.writes}


@dataclass
class _Pending:
    operation: str
    start: float
    thread: str
    params: dict[str, Any]


class Recorder:
    """Records reads and writes of the items `keep(pk, sk)` selects, from botocore's events.

    `attach` a session's emitter before its clients are built (botocore copies the emitter into
    each client), or a client's `meta.events` for a client that already exists.
    """

    def __init__(
        self,
        keep: Callable[[str, str], bool] = wave_items,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep = keep
        self._clock = clock
        self._lock = threading.Lock()
        self._history = History()
        self._id = f"history-recorder-{id(self)}"

    def attach(self, events: Any) -> None:
        events.register("before-parameter-build.dynamodb", self._before, unique_id=f"{self._id}-before")
        events.register("after-call.dynamodb", self._after, unique_id=f"{self._id}-after")
        events.register("after-call-error.dynamodb", self._error, unique_id=f"{self._id}-error")

    def history(self) -> History:
        with self._lock:
            return History(list(self._history.reads), list(self._history.writes))

    # -- botocore event handlers --------------------------------------------------------------

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name in _READS or model.name in _WRITES:
            context[self._id] = _Pending(model.name, self._clock(), threading.current_thread().name, params)

    def _after(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        pending = context.pop(self._id, None)
        if pending is None:
            return
        end = self._clock()
        if http_response.status_code < 300:
            self._record(pending, parsed, end, error_code=None)
        else:
            self._record(pending, parsed, end, error_code=parsed.get("Error", {}).get("Code") or "Unknown")

    def _error(self, context: dict[str, Any], **_: Any) -> None:
        """No answer at all (connection lost, timeout): a write may or may not have landed."""
        pending = context.pop(self._id, None)
        if pending is not None and pending.operation in _WRITES:
            self._record(pending, {}, self._clock(), error_code=None, answered=False)

    def _record(
        self,
        pending: _Pending,
        parsed: dict[str, Any],
        end: float,
        *,
        error_code: str | None,
        answered: bool = True,
    ) -> None:
        times: dict[str, Any] = {"thread": pending.thread, "start": pending.start, "end": end}
        reads: list[Read] = []
        writes: list[Write] = []
        if pending.operation in _READS:
            if error_code is None:
                reads = [
                    r for r in _reads(pending.operation, pending.params, parsed, times) if self._kept(r.key)
                ]
        else:
            requests = _write_requests(pending)
            outcomes = _outcomes(len(requests), parsed, error_code, answered)
            for request, outcome in zip(requests, outcomes, strict=True):
                if request is not None and self._kept(request[0]):
                    writes.append(Write(key=request[0], outcome=outcome, **request[1], **times))
        if reads or writes:
            with self._lock:
                self._history.reads.extend(reads)
                self._history.writes.extend(writes)

    def _kept(self, key: Key) -> bool:
        return self.keep(*key)


# -- request and response shapes ------------------------------------------------------------------


def _key_of(attrs: Mapping[str, Any]) -> Key | None:
    try:
        return str(attrs["pk"]["S"]), str(attrs["sk"]["S"])
    except (KeyError, TypeError):
        return None


def _version_of(attrs: Mapping[str, Any] | None) -> int | None:
    if not attrs or VERSION not in attrs:
        return None
    return int(attrs[VERSION]["N"])


def _reads(
    operation: str, params: dict[str, Any], parsed: dict[str, Any], times: dict[str, Any]
) -> list[Read]:
    """Strongly consistent reads of the base table only: an index here is keys-only and
    eventually consistent, so it says nothing about versions."""
    if not params.get("ConsistentRead") or params.get("IndexName"):
        return []
    if operation == "GetItem":
        key = _key_of(params.get("Key") or {})
        item = parsed.get("Item")
        if key is None:
            return []
        plain = from_attrs(item) if item else None
        return [Read(key, _version_of(item), plain, operation, **times)]
    found = []
    for item in parsed.get("Items", []):
        key = _key_of(item)
        if key is not None and VERSION in item:
            found.append(Read(key, _version_of(item), from_attrs(item), operation, **times))
    return found


def _write_requests(pending: _Pending) -> list[tuple[Key, dict[str, Any]] | None]:
    """(key, fields of `Write`) for every item write the request makes, in request order (the
    order of a transaction's CancellationReasons); None for an action that writes no item
    (ConditionCheck) or that we do not model (Delete)."""
    if pending.operation != "TransactWriteItems":
        return [_single_write(pending.operation, pending.params)]
    requests: list[tuple[Key, dict[str, Any]] | None] = []
    for action in pending.params.get("TransactItems", []):
        kind, body = next(iter(action.items()))
        operation = {"Put": "PutItem", "Update": "UpdateItem"}.get(kind)
        parsed = _single_write(operation, body) if operation else None
        if parsed is not None:
            parsed[1]["operation"] = f"TransactWriteItems.{kind}"
        requests.append(parsed)
    return requests


def _single_write(operation: str, request: Mapping[str, Any]) -> tuple[Key, dict[str, Any]] | None:
    names: dict[str, str] = dict(request.get("ExpressionAttributeNames") or {})
    values: dict[str, Any] = dict(request.get("ExpressionAttributeValues") or {})
    guard, expected = _guard(request.get("ConditionExpression"), names, values)
    if operation == "PutItem":
        item = request.get("Item") or {}
        key = _key_of(item)
        if key is None:
            return None
        sets: dict[str, Any] | None = from_attrs(item)
        fields: dict[str, Any] = {"version": _version_of(item), "sets": sets, "removes": (), "replaces": True}
    else:
        key = _key_of(request.get("Key") or {})
        if key is None:
            return None
        sets, removes = _update_effect(request.get("UpdateExpression") or "", names, values)
        version = _written_version(request.get("UpdateExpression") or "", names, values)
        fields = {"version": version, "sets": sets, "removes": removes, "replaces": False}
    return key, {"operation": operation, "guard": guard, "expected": expected, **fields}


def _name(token: str, names: Mapping[str, str]) -> str:
    return names.get(token, token)


def _guard(
    condition: str | None, names: Mapping[str, str], values: Mapping[str, Any]
) -> tuple[Guard, int | None]:
    """The version rule a condition states: `version = :v` (either way round), or the item must
    not exist (attribute_not_exists of a key attribute); anything else is not a version guard."""
    if not condition:
        return "none", None
    for match in _EQUALS.finditer(condition):
        name, value = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        if _name(name, names) == VERSION and value in values and "N" in values[value]:
            return "version", int(values[value]["N"])
    for match in _NOT_EXISTS.finditer(condition):
        if _name(match.group(1), names) in KEY_ATTRIBUTES:
            return "create", None
    return "other", None


def _clauses(expression: str) -> dict[str, str]:
    parts = _CLAUSE.split(expression)
    return {parts[i].upper(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _update_effect(
    expression: str, names: Mapping[str, str], values: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """What an UpdateExpression of plain `SET #a = :a, ...` and `REMOVE #b, ...` does to the item;
    sets is None for anything else (functions, arithmetic, ADD, DELETE, nested paths)."""
    clauses = _clauses(expression)
    if set(clauses) - {"SET", "REMOVE"}:
        return None, ()
    sets: dict[str, Any] | None = {}
    for assignment in filter(None, (a.strip() for a in clauses.get("SET", "").split(","))):
        match = _ASSIGNMENT.match(assignment)
        if sets is None or not match or "." in match.group(1) or match.group(2) not in values:
            sets = None
            continue
        sets[_name(match.group(1), names)] = from_attrs({"v": values[match.group(2)]})["v"]
    removes = tuple(_name(r.strip(), names) for r in clauses.get("REMOVE", "").split(",") if r.strip())
    return sets, removes


def _written_version(expression: str, names: Mapping[str, str], values: Mapping[str, Any]) -> int | None:
    for assignment in _clauses(expression).get("SET", "").split(","):
        match = _ASSIGNMENT.match(assignment)
        if match and _name(match.group(1), names) == VERSION and match.group(2) in values:
            return int(values[match.group(2)]["N"])
    return None


def _outcomes(count: int, parsed: dict[str, Any], error_code: str | None, answered: bool) -> list[Outcome]:
    if not answered:
        return ["unknown"] * count
    if error_code is None:
        return ["accepted"] * count
    if error_code == "ConditionalCheckFailedException":
        return ["rejected"] * count
    if error_code == "TransactionCanceledException":
        reasons = parsed.get("CancellationReasons") or []
        codes = [r.get("Code") for r in reasons] + [None] * (count - len(reasons))
        return ["rejected" if c == "ConditionalCheckFailed" else "cancelled" for c in codes[:count]]
    return ["failed"] * count  # an error answer: DynamoDB did not apply the write


# -- the checker ------------------------------------------------------------------------------


@dataclass
class Report:
    keys: int = 0
    reads: int = 0
    writes_accepted: int = 0
    writes_rejected: int = 0
    writes_unknown: int = 0
    version_gaps: list[str] = field(default_factory=list)
    lost_updates: list[str] = field(default_factory=list)
    stale_reads: list[str] = field(default_factory=list)
    unexplained_reads: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.version_gaps or self.lost_updates or self.stale_reads or self.unexplained_reads)

    def figures(self) -> dict[str, int]:
        return {
            "histories": self.keys,
            "reads": self.reads,
            "writes_accepted": self.writes_accepted,
            "writes_rejected": self.writes_rejected,
            "lost_updates": len(self.lost_updates),
            "version_gaps": len(self.version_gaps),
            "stale_reads": len(self.stale_reads),
        }


def _label(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


def _describe(write: Write) -> str:
    expected = {"version": f"expected v{write.expected}", "create": "create", "none": "blind"}.get(
        write.guard, "unversioned condition"
    )
    return f"{write.operation} v{write.version} ({expected}, {write.thread}, t={write.start:.4f}..{write.end:.4f})"


def _apply(state: dict[str, Any] | None, write: Write) -> dict[str, Any] | None:
    if write.sets is None:
        return None
    if write.replaces or state is None:
        base: dict[str, Any] = {} if write.replaces else dict(zip(KEY_ATTRIBUTES, write.key, strict=True))
    else:
        base = dict(state)
    base.update(write.sets)
    for name in write.removes:
        base.pop(name, None)
    return base


def _check_versions(key: Key, accepted: list[Write], report: Report) -> None:
    """I3: every accepted write read v-1 (its condition) and wrote v; versions go 1, 2, 3, ..."""
    for write in accepted:
        if write.guard == "version" and write.expected is not None:
            wanted: int | None = write.expected + 1
        elif write.guard == "create":
            wanted = 1
        else:
            report.version_gaps.append(
                f"{_label(key)}: accepted a write with no version condition: {_describe(write)}"
            )
            continue
        if write.version != wanted:
            report.version_gaps.append(f"{_label(key)}: {_describe(write)} should have written v{wanted}")
    counts: dict[int, int] = defaultdict(int)
    for write in accepted:
        if write.version is not None:
            counts[write.version] += 1
    for version, count in sorted(counts.items()):
        if count > 1:
            report.version_gaps.append(f"{_label(key)}: v{version} accepted {count} times")
    if counts:
        first = 1 if any(w.guard == "create" for w in accepted) else min(counts)
        missing = sorted(set(range(first, max(counts) + 1)) - set(counts))
        if missing:
            report.version_gaps.append(f"{_label(key)}: no accepted write of v{missing}")


def _check_lost(key: Key, accepted: list[Write], final: dict[str, Any] | None, report: Report) -> None:
    """I4: a write's effect stays until a later version supersedes it. A write that started after
    w was acknowledged and stored a version <= w's erased w; and the item stored at the end must
    be what the accepted writes, applied in version order, produce."""
    lost: list[str] = []
    for earlier in accepted:
        for later in accepted:
            if later is earlier or later.start <= earlier.end:
                continue
            if (later.version or 0) <= (earlier.version or 0):
                lost.append(f"{_label(key)}: {_describe(earlier)} erased by later {_describe(later)}")
                break
    if accepted:
        ordered = sorted(accepted, key=lambda w: (w.version or 0, w.end))
        last = ordered[-1]
        state: dict[str, Any] | None = None
        known = True
        for write in ordered:
            state = _apply(state, write)
            known = known and state is not None
        final_version = final.get(VERSION) if final else None
        if final is None:
            lost.append(f"{_label(key)}: the item is gone after {_describe(last)}")
        elif final_version != last.version:
            lost.append(f"{_label(key)}: stored v{final_version}, but {_describe(last)} was acknowledged")
        elif known and final != state:
            changed = sorted(k for k in {*final, *(state or {})} if final.get(k) != (state or {}).get(k))
            lost.append(
                f"{_label(key)}: the stored item differs from the accepted writes' result in {changed}"
            )
    report.lost_updates.extend(lost)


def _check_reads(key: Key, reads: list[Read], accepted: list[Write], report: Report) -> None:
    """A read that started after write w was acknowledged sees w's version or a later one (no
    stale read), and what it sees is what an accepted write of that version stored."""
    by_version: dict[int, list[dict[str, Any] | None]] = defaultdict(list)
    state: dict[str, Any] | None = None
    for write in sorted(accepted, key=lambda w: (w.version or 0, w.end)):
        state = _apply(state, write)
        if write.version is not None:
            by_version[write.version].append(state)
    for read in reads:
        done = [w for w in accepted if w.end < read.start]
        newest = max(done, key=lambda w: w.version or 0, default=None)
        if newest is not None and (read.version or 0) < (newest.version or 0):
            report.stale_reads.append(
                f"{_label(key)}: {read.operation} by {read.thread} at t={read.start:.4f} saw "
                f"v{read.version} after {_describe(newest)}"
            )
        if read.version is None:
            continue
        candidates = by_version.get(read.version, [])
        known = [c for c in candidates if c is not None]
        if not candidates or (known and len(known) == len(candidates) and read.item not in known):
            report.unexplained_reads.append(
                f"{_label(key)}: {read.operation} by {read.thread} saw v{read.version}, which no "
                "accepted write stored"
            )


def check(
    history: History, final_items: Mapping[Key, dict[str, Any] | None], keys: Iterable[Key] | None = None
) -> Report:
    """Check a history against I3/I4. `final_items` holds each key's item (plain, as `from_attrs`
    gives it) read after every writer stopped; keys without an entry skip the final-state check."""
    reads: dict[Key, list[Read]] = defaultdict(list)
    writes: dict[Key, list[Write]] = defaultdict(list)
    for read in history.reads:
        reads[read.key].append(read)
    for write in history.writes:
        writes[write.key].append(write)
    report = Report()
    for key in sorted(set(keys) if keys is not None else history.keys()):
        accepted = [w for w in writes[key] if w.accepted]
        report.keys += 1
        report.reads += len(reads[key])
        report.writes_accepted += len(accepted)
        report.writes_rejected += sum(w.outcome == "rejected" for w in writes[key])
        report.writes_unknown += sum(w.outcome == "unknown" for w in writes[key])
        _check_versions(key, accepted, report)
        if key in final_items:
            _check_lost(key, accepted, final_items[key], report)
        _check_reads(key, reads[key], accepted, report)
    return report
