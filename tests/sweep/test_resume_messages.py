"""What the user reads when a sweep is stopped (Ctrl-C, SIGTERM) and when the rerun resumes."""

from __future__ import annotations

from typing import Any

import pytest

from ablate.plan import design_mixtures
from ablate.study import enqueue_design, open_study
from ablate.sweep import SweepProgress, run_sweep

TYPES = ["caption", "count", "compare"]


def test_ctrl_c_says_what_it_requeued_and_the_rerun_what_it_found(
    ray_session: Any, make_job: Any, capsys: Any
) -> None:
    job = make_job(design={"seeds": [0, 1, 2, 3]}, resources={"max_in_flight": 2})

    def ctrl_c(p: SweepProgress) -> None:  # Ctrl-C once the first trial is done
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(job, TYPES, progress=ctrl_c)
    err = capsys.readouterr().err
    assert (
        "stopped: 2 trial(s) in flight requeued (they run again on the next `ablate sweep`); "
        "1 finished in this run are kept"
    ) in err  # (the first line is printed once its freed worker took the next trial)

    summary = run_sweep(job, TYPES, progress=lambda p: None)
    out = capsys.readouterr().out
    assert "resuming study `test-study`: 1 complete (kept, not rerun), 3 to run\n" in out
    assert summary.n_run == 3 and summary.n_complete == 4


def test_the_rerun_after_a_dead_driver_names_its_requeued_trials(
    ray_session: Any, make_job: Any, capsys: Any
) -> None:
    job = make_job(design={"volumes": [100], "balance": [0.5, 1.0], "seeds": [0, 1]})
    study = open_study(job)
    enqueue_design(study, design_mixtures(job, TYPES)[:3])
    study.ask(), study.ask()  # a driver killed (kill -9) with two trials in flight

    run_sweep(job, TYPES, progress=lambda p: None)
    out = capsys.readouterr().out
    assert (
        "resuming study `test-study`: 0 complete (kept, not rerun), 2 left running by a driver "
        "that stopped (failed, requeued), 4 to run\n"
    ) in out
    run_sweep(job, TYPES, progress=lambda p: None)  # a finished study
    assert "resuming study `test-study`: 4 complete (kept, not rerun), 0 to run\n" in (
        capsys.readouterr().out
    )


def test_a_new_study_says_nothing_of_resuming(ray_session: Any, make_job: Any, capsys) -> None:
    run_sweep(make_job(), TYPES, progress=lambda p: None)
    assert "resuming" not in capsys.readouterr().out


def test_a_search_on_a_grid_study_says_what_counts_toward_n_trials(
    ray_session: Any, make_job: Any, capsys: Any
) -> None:
    # review q: a grid study given a search with n_trials 4 ran 1 trial, then "nothing left to
    # run", and never said that the grid's trials count toward n_trials
    grid = make_job(design={"seeds": [0, 1, 2, 3]})
    run_sweep(grid, TYPES, progress=lambda p: None)
    search = make_job(design={"kind": "search", "n_trials": 6, "volumes": [100]})
    summary = run_sweep(search, TYPES, progress=lambda p: None)
    assert (
        "resuming study `test-study`: 4 complete (kept, not rerun), 0 to run, 2 more to ask "
        "(`design.n_trials` 6 counts the study's 4 trial(s) so far, whatever design made them: "
        "raise it to search further)\n"
    ) in capsys.readouterr().out
    assert summary.n_run == 2 and summary.n_complete == 6
