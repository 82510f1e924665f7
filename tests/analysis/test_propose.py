"""`ablate propose` enqueues like the sweep does: under the driver lock, and on a search study
with the sampler's coordinates of each proposed mixture."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from test_analysis import TYPES, peak_at_5000
from test_report import dirichlet_study

from ablate.analysis.load import result_trial
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


def test_propose_refuses_while_a_driver_holds_the_study(
    make_job: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_job(design=SEARCH)
    dirichlet_study(job, n=40)

    def fit(*_: Any, **__: Any) -> None:
        raise AssertionError("the surrogates were fitted (seconds) before the lock was tried")

    # refused before the fits, which take seconds on a large study
    monkeypatch.setattr("ablate.analysis.propose.fit_surrogates", fit)
    with driver_lock(job, open_study(job, create=False)), pytest.raises(UserError) as err:
        propose_and_enqueue(job, n=1, volume=5000)
    assert "another `ablate sweep` is driving this study" in str(err.value)
    waiting = open_study(job, create=False).get_trials(states=(TrialState.WAITING,))
    assert waiting == []


def test_propose_on_a_search_study_keeps_its_bounds(make_job: Any) -> None:
    """Proposals on a search study were trained past its `min_share` floor and `max_share`
    caps, and at volumes it never searches; now they keep them, and a `--volume` outside is
    refused with nothing enqueued."""
    bounded = {**SEARCH, "min_share": 0.1, "max_share": {"caption": 0.3}}
    job = make_job(design=bounded)
    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction="maximize")
    rng = np.random.default_rng(0)
    while len(study.trials) < 40:  # a search's own trials: inside its bounds, at its volume
        q = 0.1 + 0.7 * rng.dirichlet(np.ones(3))
        props = dict(zip(TYPES, q.tolist(), strict=True))
        if props["caption"] <= 0.3:
            value = peak_at_5000(props, 5000, 0) + rng.normal(0, 0.01)
            i = len(study.trials)
            study.add_trial(result_trial(props, 5000, 0, f"s{i}", value, {"score": value}, 1.0))
    done = propose_and_enqueue(job, n=3, dry_run=True)
    assert done.proposals
    for p in done.proposals:
        assert min(p.proportions.values()) >= 0.1 - 1e-9 and p.proportions["caption"] <= 0.3 + 1e-9
        assert p.volume == 5000  # a search at one volume: proposed there
    with pytest.raises(UserError, match=r"--volume 9000: this search study runs volumes 5000"):
        propose_and_enqueue(job, n=1, volume=9000)
    assert not open_study(job, create=False).get_trials(states=(TrialState.WAITING,))


def test_propose_says_when_it_has_fewer_mixtures_than_asked(make_job: Any) -> None:
    """Before, `-n 500` printed the few mixtures the trust region holds and said nothing of
    the rest."""
    job = make_job(design=SEARCH)
    dirichlet_study(job, n=40)
    done = propose_and_enqueue(job, n=500, volume=5000, dry_run=True)
    assert 1 <= len(done.proposals) < 500
    assert (
        f"Asked for 500 proposals: {len(done.proposals)} mixture(s) at least 0.05 apart (L1) lie "
        "in the region the surrogate trusts" in done.statement
    )
    few = propose_and_enqueue(job, n=1, volume=5000, dry_run=True)
    assert len(few.proposals) == 1 and "Asked for" not in few.statement
