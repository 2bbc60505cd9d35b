"""The battery's figures can fail: a run whose waves do not converge reports them as such.

A figure recorded only after every assertion passed could only ever read "all converged". Here a
check of the truth is planted to fail for wave 1, so every run of the state machine fails at its
converging sweep; the run must still record its figures (waves counted, wave 1 not converged)
and save its shrunk program beside them, and the test itself must still fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import Phase

from schemas.records import WaveRecord
from tests.reliability import test_state_machine as battery
from tests.reliability.figures import ENV, load


def test_a_failing_run_still_reports_its_figures_and_saves_its_shrunk_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path))
    # Every run fails here, so shrinking would replay hundreds of them: the program is saved unshrunk.
    quick = {"max_examples": 3, "stateful_step_count": 4, "phases": (Phase.generate,)}
    monkeypatch.setitem(battery.PROFILES, battery.PROFILE, quick)
    monkeypatch.setattr(battery, "TOTALS", battery.Totals())
    real_check = battery.check_truth

    def wave_one_never_matches(machine: battery.ReconcilerMachine, wave: WaveRecord) -> None:
        real_check(machine, wave)
        if wave.wave_number == 1:
            raise AssertionError("I6: planted: wave 1 differs from DRS")

    monkeypatch.setattr(battery, "check_truth", wave_one_never_matches)

    with pytest.raises(AssertionError, match="planted"):
        battery.test_every_invariant_holds_under_every_fault()

    figures = load(tmp_path)["state_machine"]
    assert figures["examples"] > 0
    assert figures["waves"] > 0
    assert figures["converged"] <= figures["waves"] - figures["examples"], figures  # wave 1 of each run
    (program,) = figures["shrunk_programs"]
    text = Path(program).read_text()
    assert "planted" in text and "state = ReconcilerMachine()" in text, text
