from __future__ import annotations

import math

import numpy as np
import pytest

from ablate.mixture import Mixture
from ablate.objectives import (
    LANDSCAPES,
    landscape,
    landscape_optimum,
    run_objective,
    sim_score,
    volume_factor,
)

TYPES = ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("name", LANDSCAPES)
def test_landscape_maximum_is_one_and_balanced_beats_one_type(name: str) -> None:
    land = landscape(name, 5, 3)
    assert sum(land.optimum) == pytest.approx(1.0)
    assert land.quality(land.optimum) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    draws = rng.dirichlet(np.ones(5), size=2000)
    assert max(land.quality(p) for p in draws) <= 1.0 + 1e-9  # the optimum really is the max
    centroid = land.quality([0.2] * 5)
    corners = [land.quality(np.eye(5)[i]) for i in range(5)]
    assert centroid > max(corners) + 0.1  # "balanced mixtures better"


def test_less_is_more_volume_shape_and_determinism() -> None:
    assert volume_factor(5000) == 1.0
    assert volume_factor(20000) == pytest.approx(math.exp(-0.5 * (math.log(4) / 1.5) ** 2))
    assert volume_factor(1000) < 1 and volume_factor(80000) < volume_factor(20000)
    best = landscape_optimum("less_is_more", TYPES, seed=1)
    clean = sim_score("less_is_more", best, TYPES, 5000, landscape_seed=1)[1]
    assert clean == pytest.approx(1.0)
    # the same landscape seed gives the same landscape; another one moves the optimum
    assert landscape_optimum("less_is_more", TYPES, seed=1) == best
    assert landscape_optimum("less_is_more", TYPES, seed=2) != best
    # noise: a pure function of (mixture, seed); another seed draws another value
    p = {t: 0.2 for t in TYPES}
    one = sim_score("peaked", p, TYPES, 5000, seed=0, noise=0.01)
    assert one == sim_score("peaked", p, TYPES, 5000, seed=0, noise=0.01)
    other = sim_score("peaked", p, TYPES, 5000, seed=1, noise=0.01)
    assert one[1] == other[1] and one[0] != other[0] and abs(one[0] - one[1]) < 0.05


def test_harmful_landscape_optimum_drops_one_type() -> None:
    land = landscape("harmful", 5, 0)
    assert (
        min(land.optimum) < 1e-6 and land.optimum.index(min(land.optimum)) == land.params["harmful"]
    )


def test_sim_objective_runs_through_run_objective(make_job) -> None:
    job = make_job(
        objective={
            "kind": "sim",
            "landscape": "synergy",
            "noise": 0.0,
            "duration_s": 0.05,
            "report_steps": 2,
        },
    )
    mix = Mixture(name="m", volume=5000, proportions={"caption": 0.5, "count": 0.3, "compare": 0.2})
    seen: list[tuple[int, float]] = []
    result = run_objective(job, mix, {"report": lambda step, value: seen.append((step, value))})
    expected = landscape("synergy", 3, 0).score([0.5, 0.3, 0.2], 5000)
    assert result.metrics == {
        "score": pytest.approx(expected),
        "noise_free": pytest.approx(expected),
    }
    assert result.seconds >= 0.05
    assert [s for s, _ in seen] == [1, 2] and seen[-1][1] == pytest.approx(expected)
    assert seen[0][1] < seen[1][1]
