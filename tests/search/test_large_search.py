"""A large search: past `gp_trials` results the default sampler's GP models a subset (the best
half and the most recent of the rest), so a proposal does not cost O(n^3) in the whole study."""

from __future__ import annotations

import numpy as np
import optuna

from ablate.mixture import Mixture
from ablate.objectives import sim_score
from ablate.search import cube_params, suggest
from ablate.search.gp import GP
from ablate.search.mixture_sampler import MAX_GP_TRIALS, MixtureSampler, gp_subset

TYPES = ["caption", "count", "compare", "ocr"]
SIM = {"kind": "sim", "landscape": "less_is_more", "noise": 0.0, "metric": "score"}


def test_the_subset_is_every_result_up_to_the_cap_then_the_best_and_the_latest() -> None:
    y = np.array([5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0])
    assert gp_subset(y, range(7), None).tolist() == list(range(7))
    assert gp_subset(y, range(7), 7).tolist() == list(range(7))
    # the 2 best (9 at 2, 8 at 6), then the 2 latest of the rest by trial number
    assert gp_subset(y, range(10, 17), 4).tolist() == [2, 4, 5, 6]
    assert gp_subset(y, [6, 5, 4, 3, 2, 1, 0], 4).tolist() == [0, 1, 2, 6]
    assert MAX_GP_TRIALS == 300


def _proposal(job, trials, gp_trials):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        direction="maximize", sampler=MixtureSampler(job, seed=3, gp_trials=gp_trials)
    )
    study.add_trials(trials)
    mix = suggest(study.ask(), job, TYPES)
    return np.array([mix.proportions[t] for t in TYPES]), sim_score(
        "less_is_more", dict(mix.proportions), TYPES, mix.volume
    )[1]


def test_a_study_past_the_cap_still_proposes_near_its_best(make_job, monkeypatch) -> None:
    job = make_job(objective=SIM, task_types=TYPES, design={"kind": "search", "volumes": [5000]})
    rng = np.random.default_rng(0)
    trials, best = [], 0.0
    for _ in range(60):
        shares = dict(zip(TYPES, rng.dirichlet(np.ones(4)).tolist(), strict=True))
        params = cube_params(job, TYPES, Mixture(volume=5000, proportions=shares))
        score = sim_score("less_is_more", shares, TYPES, 5000)[1]
        dists = {p: optuna.distributions.FloatDistribution(0.0, 1.0) for p in params}
        trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=score))
        best = max(best, score)
    # up to the cap the proposal is the exact GP's
    exact, exact_score = _proposal(job, trials, None)
    same, _ = _proposal(job, trials, 60)
    assert (exact == same).all()
    # past it, the GP is fitted on 20 of the 60 results, and proposes as well as the best tried
    fitted: list[int] = []
    fit = GP.fit.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        GP, "fit", classmethod(lambda cls, x, *a: fitted.append(len(x)) or fit(cls, x, *a))
    )
    _, subset_score = _proposal(job, trials, 20)
    assert fitted == [20]
    assert subset_score > best - 0.01 and exact_score > best - 0.01
