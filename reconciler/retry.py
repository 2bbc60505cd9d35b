"""The one retry policy of our own code, so no module grows a loop of its own.

botocore retries each AWS call by itself (standard mode, `clients.py`); what is left to us is
three kinds of "try again", each stated here once:
- a lost optimistic-concurrency race (`VersionConflict`): re-read and decide again, a bounded
  number of times inside one invocation (`RetryPolicy.run`);
- a StartRecovery that DRS throttled (nothing was started): a few short pauses inside the same
  invocation (`start_pauses`); likewise a write that must land at once while DynamoDB is in
  trouble (`through_trouble`: a refused start's FAILED record);
- a start DRS refused for a reason that passes (throttling that outlasts those pauses, the
  concurrent-job quota, DRS or its credentials out of reach): deferred to a later invocation,
  with an exponential back-off capped at about one sweep interval (`next_start_at`), for at most
  the retry window (`start_window`); after it the wave FAILS saying why. docs/start-protocol.md
  has the table of DRS answers and what each does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from .errors import TemporaryError, VersionConflict

T = TypeVar("T")


class Again:
    """Returned by an attempt that acted and must read and decide again (not a failure)."""


AGAIN = Again()


class Contended(TemporaryError):
    """Every attempt lost its version race: someone else keeps writing; try again later."""


@dataclass(frozen=True)
class RetryPolicy:
    conflict_attempts: int = 6
    start_pauses: tuple[float, ...] = (0.2, 0.6)
    trouble_pauses: tuple[float, ...] = (0.2, 0.6, 1.5)
    start_backoff: timedelta = timedelta(seconds=15)
    start_backoff_cap: timedelta = timedelta(seconds=60)
    start_window: timedelta = timedelta(hours=1)

    def run(self, attempt: Callable[[], T | Again], *, what: str) -> T:
        """Call `attempt` until it returns a result, neither losing a version race nor asking to
        decide again (`AGAIN`); each call must read afresh. Raises `Contended` (temporary) when
        no attempt settled."""
        for _ in range(self.conflict_attempts):
            try:
                result = attempt()
            except VersionConflict:
                continue
            if not isinstance(result, Again):
                return result
        raise Contended(f"{what}: lost {self.conflict_attempts} version races in a row; try again")

    def through_trouble(self, attempt: Callable[[], T], *, sleep: Callable[[float], None]) -> T:
        """For a write that must land now (a refusal's FAILED record: without it the claim would
        expire and be started again): ask again after short pauses while DynamoDB is in trouble
        (throttled, a transaction in the way, 5xx). The last TemporaryError is raised."""
        for pause in self.trouble_pauses:
            try:
                return attempt()
            except TemporaryError:
                sleep(pause)
        return attempt()

    def next_start_at(self, deferred_since: datetime, now: datetime) -> datetime:
        """When a deferred start is tried again: after as long as it has been deferred already,
        at least `start_backoff` and at most `start_backoff_cap` (about one sweep interval)."""
        return now + min(self.start_backoff_cap, max(self.start_backoff, now - deferred_since))

    def window_closed(self, deferred_since: datetime, now: datetime) -> bool:
        return now >= deferred_since + self.start_window
