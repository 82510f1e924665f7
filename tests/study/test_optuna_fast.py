"""Contract tests of `ablate.study.optuna_fast`: each private-Optuna fast path against the public
API it replaces (run on every Optuna the pyproject bounds allow)."""

from __future__ import annotations

import collections
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ablate.plan import design_mixtures
from ablate.study import enqueue_design, open_study, trial_attrs
from ablate.study.optuna_fast import (
    journal_file_backend,
    pop_waiting,
    set_trial_attr_by_id,
    waiting_ids,
)


@pytest.mark.parametrize("with_params", [True, False])
def test_bulk_enqueue_writes_what_enqueue_trial_writes(
    make_job, tmp_path: Path, with_params
) -> None:
    job = make_job(design={"kind": "grid", "volumes": [100, 200], "balance": [0.5, 1.0]})
    study = open_study(job)
    study.tell(study.ask(), 0.1)  # numbering continues after existing trials
    mixtures = design_mixtures(job, ["caption", "count", "compare"])
    params = (lambda m: {"x": float(m.volume)}) if with_params else None
    assert enqueue_design(study, mixtures, params) == len(mixtures)
    assert enqueue_design(study, mixtures, params) == 0  # nothing twice

    reference = open_study(make_job(study="reference"))
    reference.tell(reference.ask(), 0.1)
    for mix in mixtures:
        reference.enqueue_trial(params=params(mix) if params else {}, user_attrs=trial_attrs(mix))

    def rows(s: object) -> list[tuple[object, ...]]:
        return [
            (t.number, t.state, t.user_attrs, t.system_attrs, t.datetime_start)
            for t in s.get_trials(deepcopy=False, states=(TrialState.WAITING,))  # type: ignore[attr-defined]
        ]

    assert rows(study) == rows(reference)
    waiting = collections.deque(t._trial_id for t in study.get_trials(states=(TrialState.WAITING,)))
    trial = pop_waiting(study, waiting)
    assert (
        trial.number == 1 and trial.user_attrs["design_key"] == rows(reference)[0][2]["design_key"]
    )
    if with_params:
        assert trial.params == {} and study.trials[1].system_attrs["fixed_params"] == {"x": 100.0}
    study.tell(trial, 0.5)
    assert study.trials[1].state == TrialState.COMPLETE


def test_flushed_journal_reads_back_with_optunas_own_backend(tmp_path: Path) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = str(tmp_path / "journal.log")
    ours = optuna.create_study(study_name="s", storage=JournalStorage(journal_file_backend(path)))
    for x in (0.1, 0.2, 0.3):
        trial = ours.ask()
        trial.set_user_attr("x", x)
        ours.tell(trial, x)
    theirs = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)))
    assert [(t.number, t.value, t.user_attrs) for t in theirs.trials] == [
        (t.number, t.value, t.user_attrs) for t in ours.trials
    ]


def test_pop_waiting_takes_the_queue_in_the_order_ask_does(make_job) -> None:
    job = make_job(design={"kind": "grid", "volumes": [100, 200], "balance": [0.5, 1.0]})
    mixtures = design_mixtures(job, ["caption", "count", "compare"])
    ours, theirs = open_study(job), open_study(make_job(study="public"))
    enqueue_design(ours, mixtures)
    enqueue_design(theirs, mixtures)
    queue = waiting_ids(ours)
    assert len(queue) == len(mixtures)
    for _ in mixtures:
        mine, public = pop_waiting(ours, queue), theirs.ask()
        assert (mine.number, mine.user_attrs) == (public.number, public.user_attrs)
    assert pop_waiting(ours, queue) is None
    states = {t.state for t in ours.get_trials()}
    assert states == {TrialState.RUNNING}


def test_attribute_of_a_trial_held_by_no_trial_object(make_job) -> None:
    study = open_study(make_job())
    study.ask()
    (frozen,) = study.get_trials(states=(TrialState.RUNNING,))
    set_trial_attr_by_id(study, frozen, "error", "driver died")
    assert study.trials[0].user_attrs["error"] == "driver died"
