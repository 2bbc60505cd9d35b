"""One wait policy for the tests and the local tools: deadlines follow progress, not wall time.

A test or a tool (`make demo`, `make invoke`, `make replay`) that waits for the system (a drill to finish, threads to reach a gate, a reader to poll)
keeps waiting while the system makes progress, and fails only after a long stretch in which
nothing moved, with a message that names what stalled and the last progress seen. A loaded
machine slows the system down but does not stop it, so it never fails these waits; a hang still
fails, after `IDLE_TIMEOUT` seconds of no progress, long before pytest-timeout's hang guard.

`progress` is any callable whose answer changes when the system moves on (a count of polls,
invocations, finished threads or output lines; a fingerprint of a document). Without it the idle
time is a plain hang guard: it must then stay far above what any loaded machine needs.
Performance is measured by the benchmarks (`make bench`), never asserted with a stopwatch here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

# How long nothing may move before a wait gives up. The longest quiet stretch of a healthy run
# (a fault-profile drill waiting for its deferred start, at --speed 12) is about 10 s quiet and a
# few times that on a machine loaded twice over.
IDLE_TIMEOUT = 120.0


class Stalled(AssertionError):
    """A wait saw no progress for its whole idle timeout."""


def wait_until(
    condition: Callable[[], T],
    *,
    what: str | Callable[[], str],
    progress: Callable[[], Any] | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    interval: float = 0.05,
) -> T:
    """Poll `condition` every `interval` s until it answers something truthy, and return that.

    Every time `progress()` answers something new the idle clock restarts; once `idle_timeout`
    seconds pass with no new answer (and the condition still false), raise `Stalled`, saying
    `what` was awaited (a string, or a callable read at the failure) and the last progress seen.
    """
    last = progress() if progress is not None else None
    quiet_since = time.monotonic()
    while True:
        result = condition()
        if result:
            return result
        if progress is not None:
            now = progress()
            if now != last:
                last, quiet_since = now, time.monotonic()
        idle = time.monotonic() - quiet_since
        if idle > idle_timeout:
            seen = f"; last progress: {_short(last)}" if progress is not None else ""
            awaited = what() if callable(what) else what
            raise Stalled(f"stalled: {awaited}: nothing moved for {idle:.1f} s{seen}")
        time.sleep(interval)


def join_all(
    threads: Iterable[threading.Thread],
    *,
    what: str,
    progress: Callable[[], Any] | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
) -> None:
    """Wait until every thread has ended; each one that ends is progress (and so is `progress`)."""
    threads = list(threads)

    def alive() -> list[str]:
        return [t.name for t in threads if t.is_alive()]

    wait_until(
        lambda: not alive(),
        what=lambda: f"{what} (still running: {', '.join(alive())})",
        progress=lambda: (len(alive()), progress() if progress is not None else None),
        idle_timeout=idle_timeout,
        interval=0.01,
    )


def results(
    futures: Iterable[Future[T]],
    *,
    what: str,
    progress: Callable[[], Any] | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
) -> list[T]:
    """The futures' results once all are done (re-raising the first failure); each future that
    completes is progress (and so is `progress`)."""
    futures = list(futures)

    def done() -> int:
        return sum(f.done() for f in futures)

    wait_until(
        lambda: done() == len(futures),
        what=lambda: f"{what} ({len(futures) - done()} of {len(futures)} not done)",
        progress=lambda: (done(), progress() if progress is not None else None),
        idle_timeout=idle_timeout,
        interval=0.01,
    )
    return [f.result() for f in futures]


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
