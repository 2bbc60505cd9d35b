"""EventBridge's delivery and cross-account forwarding, as AWS does them, on moto's buses.

A rule's target gets the whole event in AWS, `account` included; moto's default target input
leaves `account` out. And a rule whose target is another bus (a spoke's default bus forwarding
DRS events to the hub's, deploy/spoke-events.yml) forwards the event itself: the delivered event
keeps its `id`, `account`, `region`, `time`, `resources` and `detail` (drs-facts.md, "Many
accounts and Regions"). moto 5 re-puts it on the target bus instead (`Rule.send_to_targets`, its
`event-bus` branch), which stamps the target's account and Region, drops `resources` and takes a
new time: a spoke's Launch Result would reach the hub as the hub's own.

`install()` (idempotent, by both stacks) gives targets `account`, and replaces the forwarding:
the event goes to the target bus's rules unchanged, only when the target bus's policy lets the
source account put events on it (its put_permission statements: the account, or `*`), as the hub
bus's resource policy decides in AWS; a refused event is counted in `refused` and goes nowhere
(AWS would fail the delivery). Forwarding is one hop: a forwarded event is not forwarded again.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from moto.events.models import EventBus, Rule, events_backends
from moto.events.utils import EventTemplateParser
from moto.utilities.arns import parse_arn

_original: Callable[..., Any] | None = None
_DEFAULT_TEMPLATE = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
_lock = threading.Lock()
forwarded: Counter[tuple[str, str]] = Counter()  # (from account, to account): events forwarded
refused: Counter[tuple[str, str]] = Counter()  # (from account, to account): refused by the bus policy


def install() -> None:
    """Idempotent: patch `Rule.send_to_targets` for targets that are event buses."""
    global _original  # noqa: PLW0603 (one patch per process, by design)
    if _original is not None:
        return
    original = Rule.send_to_targets
    _original = original
    # A target's input is the whole event, `account` included (moto's default input leaves it out)
    template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' not in template:
        EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
            '"source": "<source>", ', '"source": "<source>", "account": "<account>", '
        )

    def send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
        buses = [t for t in self.targets if _is_bus(t["Arn"])]
        if not buses:
            original(self, original_event, transform_input)
            return
        if not self.event_pattern.matches_event(original_event):
            return
        _send(self, copy.deepcopy(original_event), transform_input)
        for target in buses:
            _forward(original_event, target["Arn"])

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


def uninstall() -> None:
    global _original  # noqa: PLW0603
    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = _DEFAULT_TEMPLATE
    if _original is not None:
        Rule.send_to_targets = _original  # type: ignore[method-assign]
        _original = None


def _is_bus(arn: str) -> bool:
    try:
        parsed = parse_arn(arn)
    except Exception:  # not an ARN moto parses: not ours to handle
        return False
    return bool(parsed.service == "events" and parsed.resource_type == "event-bus")


def _forward(event: Any, bus_arn: str) -> None:
    arn = parse_arn(bus_arn)
    source = str(event.get("account", ""))
    bus: EventBus = events_backends[arn.account][arn.region].describe_event_bus(arn.resource_id)
    if source != arn.account and not _allows(bus, source):
        with _lock:
            refused[(source, arn.account)] += 1
        return
    with _lock:
        forwarded[(source, arn.account)] += 1
    for rule in list(bus.rules.values()):
        if rule.state == "ENABLED" and rule.event_pattern.matches_event(event):
            _send(rule, copy.deepcopy(event))


def _send(rule: Rule, event: Any, transform_input: bool = True) -> None:
    """moto's own delivery to the rule's targets that are not buses (one hop: a forwarded event
    is not forwarded again)."""
    kept = rule.targets
    others = [t for t in kept if not _is_bus(t["Arn"])]
    if not others:
        return
    rule.targets = others
    try:
        assert _original is not None
        _original(rule, event, transform_input)
    finally:
        rule.targets = kept


def _allows(bus: EventBus, account: str) -> bool:
    """Whether the bus's resource policy lets `account` put events on it (put_permission's
    statements: the account or `*`; conditions, such as an organisation's, not evaluated)."""
    policy = json.loads(bus.policy) if bus.policy else {}
    for statement in policy.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action")
        if not {"events:PutEvents", "events:*"} & set(actions if isinstance(actions, list) else [actions]):
            continue
        principal = statement.get("Principal")
        principals = principal.get("AWS") if isinstance(principal, dict) else principal
        for one in principals if isinstance(principals, list) else [principals]:
            if one in ("*", account) or str(one).startswith(f"arn:aws:iam::{account}:"):
                return True
    return False
