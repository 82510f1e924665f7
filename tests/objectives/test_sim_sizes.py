"""Model size in the sim objective: the smallest model scores the landscape itself, a larger
one a landscape whose mixture ranking correlates with it at the set Spearman."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import spearmanr

from ablate.config import JobSpec
from ablate.design import lattice_points
from ablate.objectives import landscape, run_objective
from ablate.objectives.sim_sizes import size_quality
from ablate.plan import design_mixtures

SIZES = [0.5e9, 2e9, 8e9]


def spearman(name: str, seed: int, rho: float, small: float, large: float) -> float:
    grid = lattice_points(3, 12)  # 91 mixtures over the simplex
    a = [size_quality(name, p, seed, SIZES, small, rho) for p in grid]
    b = [size_quality(name, p, seed, SIZES, large, rho) for p in grid]
    return float(spearmanr(a, b)[0])


@pytest.mark.parametrize("name", ["less_is_more", "harmful", "synergy"])
@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_the_realised_spearman_over_a_grid_is_close_to_the_set_value(name: str, rho: float) -> None:
    realised = [spearman(name, seed, rho, SIZES[0], SIZES[-1]) for seed in range(4)]
    assert abs(np.mean(realised) - rho) < 0.07, realised
    assert all(abs(r - rho) < 0.15 for r in realised), realised


def test_sizes_between_sit_between_in_log_size() -> None:
    """2B is log-halfway from 0.5B to 8B: it correlates with each end at about 2 sin(...)^0.5."""
    near = np.mean([spearman("less_is_more", s, 0.6, SIZES[0], SIZES[1]) for s in range(4)])
    far = np.mean([spearman("less_is_more", s, 0.6, SIZES[0], SIZES[2]) for s in range(4)])
    assert near > far + 0.1


def test_the_smallest_size_is_the_landscape_and_rank_correlation_1_is_one_landscape() -> None:
    p = [0.6, 0.3, 0.1]
    plain = landscape("peaked", 3, 2).quality(p)
    assert size_quality("peaked", p, 2, SIZES, SIZES[0], 0.5) == plain
    assert size_quality("peaked", p, 2, SIZES, SIZES[-1], 1.0) == plain
    assert size_quality("peaked", p, 2, SIZES, SIZES[-1], 0.5) != plain


def test_a_sim_trial_scores_its_models_size(make_job: Callable[..., JobSpec]) -> None:
    job = make_job(
        models=[{"name": "s", "size": 0.5e9}, {"name": "l", "size": 8e9}],
        objective={"kind": "sim", "metric": "score", "rank_correlation": 0.3},
        design={"kind": "grid", "volumes": [5000], "balance": [0.4], "seeds": [0]},
    )
    small, large = design_mixtures(job, ["caption", "count", "compare"])
    s = run_objective(job, small).metrics["score"]
    l_ = run_objective(job, large).metrics["score"]
    p = [small.proportions[t] for t in ("caption", "count", "compare")]
    assert s == pytest.approx(landscape("less_is_more", 3, 0).quality(p))  # V(5000) = 1
    assert l_ == pytest.approx(size_quality("less_is_more", p, 0, [0.5e9, 8e9], 8e9, 0.3))


def test_a_mixture_without_a_model_runs_on_the_first_model(
    make_job: Callable[..., JobSpec],
) -> None:
    """`ablate trial --mixture M.yaml` of a job with `models:`: the first model, sized."""
    job = make_job(
        models=[{"name": "l", "size": 8e9}, {"name": "s", "size": 0.5e9}],
        objective={"kind": "sim", "metric": "score", "rank_correlation": 0.3},
        design={"kind": "grid", "volumes": [5000], "balance": [0.4], "seeds": [0]},
    )
    first = design_mixtures(job, ["caption", "count", "compare"])[0]
    assert first.model == "l"
    bare = dataclasses.replace(first, model="")
    assert run_objective(job, bare).metrics == run_objective(job, first).metrics
