"""A fixed design that shrank between runs (fewer seeds, a volume left out): the waiting trials
of the larger design are dropped, never run, not counted as failed, and enqueued again when the
job has their points back. Before: the resumed sweep ran them all ("10 to run", 8 of them
outside the job's design)."""

from __future__ import annotations

from typing import Any

import pytest
from optuna.trial import TrialState

from ablate.analysis import load
from ablate.analysis.failures import failures
from ablate.analysis.tables import failed_trials
from ablate.plan import design_mixtures
from ablate.study import drop_outside, enqueue_design, open_study
from ablate.sweep import run_sweep
from ablate.sweep.driver import resume_line

TYPES = ["caption", "count", "compare"]
SIM = {"kind": "sim", "landscape": "less_is_more", "metric": "score", "noise": 0.01}
GRID = {"kind": "grid", "volumes": [1000, 5000], "balance": [0.5, 1.0]}


def _states(study: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def test_waiting_trials_outside_a_smaller_design_are_dropped_and_come_back(make_job) -> None:
    big = make_job(objective=SIM, design={**GRID, "seeds": [0, 1, 2]})
    small = make_job(objective=SIM, design={**GRID, "seeds": [0]})
    study = open_study(big)
    assert enqueue_design(study, design_mixtures(big, TYPES)) == 12
    for _ in range(2):  # the first run finished two trials (seeds 0 and 1 of the first mixture)
        trial = study.ask()
        study.tell(trial, 0.5)
    proposal = design_mixtures(big, TYPES)[0]
    proposal = type(proposal)(**{**proposal.__dict__, "volume": 3000, "name": "proposed-1"})
    enqueue_design(study, [proposal], extra=lambda m: {"proposed_by": "gp", "predicted": 0.7})

    dropped = drop_outside(study, design_mixtures(small, TYPES))
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert dropped == 7  # 12 - 2 done - the 3 other seed-0 points still to run
    assert sorted(t.user_attrs["seed"] for t in waiting) == [0, 0, 0, 0]  # with the proposal
    assert any(t.user_attrs.get("proposed_by") == "gp" for t in waiting)
    assert _states(study) == {"COMPLETE": 2, "WAITING": 4, "FAIL": 7}
    line = resume_line(small, study, 0, dropped)
    assert line is not None and "4 to run, 7 waiting trial(s) dropped, never run" in line

    df = load(small)
    assert failed_trials(df).empty  # not failures of their mixtures
    counted = failures(df)
    assert counted.trials == 0 and counted.dropped == 7
    assert "7 waiting trial(s) were dropped, never run" in " ".join(counted.describe())

    # the larger design again: its dropped points are enqueued anew (FAIL is not kept)
    assert enqueue_design(study, design_mixtures(big, TYPES)) == 7


@pytest.mark.slow
def test_a_sweep_resumed_with_fewer_seeds_runs_only_its_design(ray_session, make_job) -> None:
    big = make_job(objective=SIM, design={**GRID, "seeds": [0, 1, 2]})
    study = open_study(big)
    enqueue_design(study, design_mixtures(big, TYPES))  # a first run stopped before any trial
    small = make_job(objective=SIM, design={**GRID, "seeds": [0]})
    summary = run_sweep(small, TYPES, progress=None)
    assert summary.n_run == 4 and summary.n_complete == 4
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert {t.user_attrs["seed"] for t in done} == {0}
    assert _states(study) == {"COMPLETE": 4, "FAIL": 8}


def test_status_counts_dropped_trials_apart(make_job) -> None:
    from ablate.sweep.status import failure_lines

    big = make_job(objective=SIM, design={**GRID, "seeds": [0, 1]})
    study = open_study(big)
    enqueue_design(study, design_mixtures(big, TYPES))
    drop_outside(
        study, design_mixtures(make_job(objective=SIM, design={**GRID, "seeds": [0]}), TYPES)
    )
    lines = failure_lines(study.get_trials(deepcopy=False))
    assert lines[0] == "  failed: 4 dropped (outside the job's design, never run)"
