"""`ablate propose` enqueues like the sweep does: under the driver lock, and on a search study
with the sampler's coordinates of each proposed mixture."""

from __future__ import annotations

from typing import Any

import pytest
from optuna.trial import TrialState
from test_report import dirichlet_study

from ablate.analysis.report import propose_and_enqueue
from ablate.errors import UserError
from ablate.search import cube_params, param_names
from ablate.study import driver_lock, mixture_from_attrs, open_study

SEARCH = {"kind": "search", "n_trials": 80, "sampler": "tpe", "volumes": [5000], "seeds": [0]}


def test_propose_on_a_search_study_enqueues_the_samplers_coordinates(make_job: Any) -> None:
    """Before, the proposals were enqueued with empty params: the sampler learnt from
    parameters its trials never trained on."""
    job = make_job(design=SEARCH)
    dirichlet_study(job, n=40)
    done = propose_and_enqueue(job, n=2, volume=5000)
    assert done.trials == 2
    waiting = open_study(job, create=False).get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 2
    types = list(job.task_types)
    for t in waiting:
        fixed = t.system_attrs["fixed_params"]
        assert sorted(fixed) == sorted(param_names(job, types))
        mixture_params = cube_params(job, types, mixture_from_attrs(t.user_attrs))
        assert fixed == pytest.approx(mixture_params)
        assert t.user_attrs["proposed_by"] == done.model


def test_propose_refuses_while_a_driver_holds_the_study(make_job: Any) -> None:
    job = make_job(design=SEARCH)
    dirichlet_study(job, n=40)
    with driver_lock(job, open_study(job, create=False)), pytest.raises(UserError) as err:
        propose_and_enqueue(job, n=1, volume=5000)
    assert "another `ablate sweep` is driving this study" in str(err.value)
    waiting = open_study(job, create=False).get_trials(states=(TrialState.WAITING,))
    assert waiting == []
