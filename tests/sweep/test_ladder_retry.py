"""A ladder rung whose trials failed (review j: a model folder not yet mounted): it is decided
only once each point completed or failed in two runs. Before, a rung whose trials all failed
once was recorded as promoting nothing, and the larger models never ran after the retries
succeeded. The driver's steps without Ray: enqueue, ask, tell, advance."""

from __future__ import annotations

from typing import Any

from optuna.trial import TrialState
from test_ladder_sweep import TYPES, ladder

from ablate.study import open_study
from ablate.sweep.ladder import PROMOTED, advance_ladder, ladder_lines


def _run_waiting(study: Any, fail: bool = False) -> int:
    """What a sweep's dispatcher does to every waiting trial: run it (a score), or fail it."""
    n = 0
    for _ in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial = study.ask()
        if fail:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, float(trial.user_attrs["balance"]))  # (balanced mixtures win)
        n += 1
    return n


def test_a_rung_that_failed_once_is_decided_after_its_retries(make_job: Any) -> None:
    job = ladder(make_job)
    study = open_study(job)
    assert advance_ladder(job, study, TYPES, restart=True) == 12  # rung 0: 6 mixtures x 2
    _run_waiting(study)
    assert advance_ladder(job, study, TYPES) == 6  # rung 1 (mid): 3 promoted x 2 seeds
    _run_waiting(study, fail=True)  # every trial of rung 1 fails (its model folder missing)
    assert advance_ladder(job, study, TYPES) == 0
    assert "2" not in (study.user_attrs.get(PROMOTED) or {})  # not decided: nothing recorded
    lines = "\n".join(ladder_lines(job, study, TYPES))
    assert "rung 1 (mid): 6 point(s) failed: the next `ablate sweep` retries them" in lines
    assert "rung 2 (target): waits for rung 1" in lines

    # the next sweep: its restart retries rung 1's failed points, which now complete
    assert advance_ladder(job, study, TYPES, restart=True) == 6
    _run_waiting(study)
    assert advance_ladder(job, study, TYPES) == 2  # the best mixture to the target x 2 seeds
    assert len(study.user_attrs[PROMOTED]["2"]) == 1


def test_a_point_that_fails_in_two_runs_is_given_up_on(make_job: Any) -> None:
    job = ladder(make_job)
    study = open_study(job)
    advance_ladder(job, study, TYPES, restart=True)
    trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    top = max(t.user_attrs["balance"] for t in trials)
    stubborn = {t.user_attrs["design_key"] for t in trials if t.user_attrs["balance"] == top}
    assert len(stubborn) == 2
    for run in range(2):  # the balanced mixture's two seeds fail in two runs (an OOM, say)
        if run == 1:  # the next sweep's restart retries them
            assert advance_ladder(job, study, TYPES, restart=True) == 2
        for _ in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            trial = study.ask()
            if trial.user_attrs["design_key"] in stubborn:
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, float(trial.user_attrs["balance"]))
        # after the first run: waits for the retry; after the second: decided without them
        assert advance_ladder(job, study, TYPES) == (0 if run == 0 else 6)
    assert len(study.user_attrs[PROMOTED]["1"]) == 3


def test_a_changed_promote_is_said_where_a_rung_was_decided_with_another(make_job: Any) -> None:
    """Review j: a changed `design.promote` applied only to rungs decided afterwards, silently."""
    job = ladder(make_job)
    study = open_study(job)
    advance_ladder(job, study, TYPES, restart=True)
    _run_waiting(study)
    advance_ladder(job, study, TYPES)  # rung 0 decided with promote 0.5
    assert "decided with promote" not in "\n".join(ladder_lines(job, study, TYPES))
    wider = ladder(lambda **kw: make_job(**{**kw, "design": {**kw["design"], "promote": 0.8}}))
    lines = "\n".join(ladder_lines(wider, study, TYPES))
    assert "3 promoted to mid (decided with promote 0.5; the job's 0.8 applies to rungs" in lines
