"""The sweep's lanes (reconciler/sweep.py, docs/multi-account.md): waves of one account at most
`account_concurrency` at once, the lanes taking turns, so one big, slow or broken account cannot
starve the others; an account that refuses its role is reported on each of its waves without
asking STS again, and the others go on."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

from reconciler.reconcile import Outcome
from reconciler.spokes import SpokeRefused, Target
from reconciler.store import WaveKey, wave_key
from reconciler.sweep import Sweeper
from schemas.records import WaveRecord

ACCOUNTS = ("111111111111", "222222222222", "333333333333")


def wave(number: int, account: str) -> WaveRecord:
    return WaveRecord(
        execution_id=f"e-{account}",
        wave_number=number,
        name="w",
        is_drill=True,
        account_id=account,
        region="us-east-1",
        job_id=f"drsjob-{number:017d}",
        servers=(),
        version=1,
        created_at="2026-12-05T10:00:00.000Z",
        updated_at="2026-12-05T10:00:00.000Z",
    )


class Store:
    def __init__(self, waves: list[WaveRecord]) -> None:
        self.waves = {wave_key(w.execution_id, w.wave_number): w for w in waves}

    def inflight_waves(self, first_shard: int = 0) -> Iterator[WaveKey]:
        yield from self.waves

    def get_wave(self, key: WaveKey) -> WaveRecord | None:
        return self.waves.get(key)


class Reconciler:
    """Counts waves at once per account; `hold` makes an account's reconciles wait for `release`."""

    def __init__(self, refuse: str | None = None) -> None:
        self.lock = threading.Lock()
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.peak_total = 0
        self.peak_held = 0  # the held account's waves at once while the others still had work
        self.done: Counter[str] = Counter()
        self.noted: list[tuple[str, str]] = []
        self.refuse = refuse
        self.hold: str | None = None
        self.others: dict[str, int] = {}  # other accounts and their wave counts (for peak_held)
        self.release = threading.Event()

    def reconcile_wave(self, key: WaveKey, stored: WaveRecord | None = None) -> Outcome:
        assert stored is not None, "the sweep hands over the wave it read"
        account = str(stored.account_id)
        with self.lock:
            self.active[account] += 1
            self.peak[account] = max(self.peak[account], self.active[account])
            self.peak_total = max(self.peak_total, sum(self.active.values()))
            others_waiting = any(self.done[a] < n for a, n in self.others.items())
            if account == self.hold and others_waiting:
                self.peak_held = max(self.peak_held, self.active[account])
        try:
            if account == self.refuse:
                raise SpokeRefused(account, f"arn:aws:iam::{account}:role/x", "AccessDenied", "no")
            if account == self.hold:
                assert self.release.wait(timeout=120), "the other accounts never finished: starved"
            return Outcome.WRITTEN
        finally:
            with self.lock:
                self.active[account] -= 1
                self.done[account] += 1

    def note_access_problem(self, stored: WaveRecord, problem: str) -> None:
        self.noted.append((str(stored.account_id), problem))


def sweeper(store: Store, reconciler: Reconciler, per_account: int = 2, total: int = 4) -> Sweeper:
    return Sweeper(
        store,  # type: ignore[arg-type]
        reconciler,  # type: ignore[arg-type]
        executions=None,  # type: ignore[arg-type]
        concurrency=total,
        account_concurrency=per_account,
        target_of=lambda w: Target(str(w.account_id), str(w.region)),
        clock=lambda: datetime(2026, 12, 5, tzinfo=UTC),
    )


def test_each_account_gets_at_most_its_bound_and_every_wave_is_visited():
    waves = [wave(n, account) for account in ACCOUNTS for n in range(1, 13)]
    reconciler = Reconciler()
    report = sweeper(Store(waves), reconciler).sweep()
    assert report.visited == 36 and report.outcomes == {"written": 36}
    assert all(reconciler.peak[a] <= 2 for a in ACCOUNTS), reconciler.peak
    assert reconciler.peak_total <= 4


def test_a_slow_account_cannot_starve_the_others():
    big, *others = ACCOUNTS
    waves = [wave(n, big) for n in range(1, 41)] + [wave(n, a) for a in others for n in range(1, 6)]
    reconciler = Reconciler()
    reconciler.hold = big  # every wave of the big account hangs until the others are done
    reconciler.others = dict.fromkeys(others, 5)

    def release_when_others_done() -> None:
        while not all(reconciler.done[a] == 5 for a in others):
            threading.Event().wait(0.01)
        reconciler.release.set()

    watcher = threading.Thread(target=release_when_others_done, daemon=True)
    watcher.start()
    report = sweeper(Store(waves), reconciler).sweep()
    assert report.outcomes == {"written": 50}
    assert reconciler.peak_held <= 2  # it never held more than its share while the others waited


def test_a_lone_account_uses_the_whole_pool():
    """A single-account hub sweeps as wide as SWEEP_CONCURRENCY, not its per-account bound: the
    waves meet four at a time at a barrier (which breaks, failing them, if only two ever run)."""
    waves = [wave(n, ACCOUNTS[0]) for n in range(1, 41)]
    barrier = threading.Barrier(4, timeout=30)

    class Together(Reconciler):
        def reconcile_wave(self, key: WaveKey, stored: WaveRecord | None = None) -> Outcome:
            outcome = super().reconcile_wave(key, stored)
            barrier.wait()
            return outcome

    report = sweeper(Store(waves), Together(), per_account=2, total=4).sweep()
    assert report.outcomes == {"written": 40} and report.errors == 0


def test_an_account_that_refuses_its_role_is_reported_on_each_wave_and_the_others_go_on():
    broken = ACCOUNTS[1]
    waves = [wave(n, account) for account in ACCOUNTS for n in range(1, 7)]
    reconciler = Reconciler(refuse=broken)
    report = sweeper(Store(waves), reconciler, per_account=1).sweep()
    assert report.unreachable == {broken: 6}
    assert report.outcomes["written"] == 12 and report.errors == 0
    # one refusal asked STS; the lane's other waves are told why without asking again
    assert reconciler.done[broken] == 1
    assert len(reconciler.noted) == 5 and all(
        a == broken and "AccessDenied" in p for a, p in reconciler.noted
    )
