from __future__ import annotations

import math

import pytest

from ablate.design import design_key, dominant_share, fixed_design, proportions_for_balance
from ablate.errors import UserError
from ablate.mixture import Mixture, normalized_entropy
from ablate.objectives import load_target, run_python_objective


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("level", [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
def test_balance_level_is_hit(k: int, level: float) -> None:
    types = [f"t{i}" for i in range(k)]
    props = proportions_for_balance(types, level)
    assert math.isclose(sum(props.values()), 1.0, abs_tol=1e-12)
    assert abs(normalized_entropy(props) - level) < 1e-9
    # the first type dominates, the rest share equally
    rest = list(props.values())[1:]
    assert props["t0"] >= max(rest) - 1e-12
    assert max(rest) - min(rest) < 1e-12


def test_balance_endpoints_and_known_value() -> None:
    assert proportions_for_balance(["a", "b"], 1.0) == {"a": 0.5, "b": 0.5}
    assert proportions_for_balance(["a", "b", "c"], 0.0) == {"a": 1.0, "b": 0.0, "c": 0.0}
    # k=2, b=0.5: binary entropy H(x) = 0.5 bit at x = 0.8900...
    assert dominant_share(0.5, 2) == pytest.approx(0.8899721, abs=1e-6)
    with pytest.raises(UserError):
        dominant_share(1.5, 3)


def test_grid_size_names_and_keys(make_job) -> None:
    job = make_job(design={"volumes": [200, 1000], "balance": [0.5, 1.0], "seeds": [0, 1, 2]})
    points = fixed_design(job, ["caption", "count", "compare"])
    assert len(points) == 2 * 2 * 3
    assert points[0].name == "v200-b0.50-s0"
    assert points[-1].name == "v1000-b1.00-s2"
    assert all(p.taxonomy == "task_type" for p in points)
    keys = [design_key(p) for p in points]
    assert len(set(keys)) == len(keys)
    # the key is stable and ignores the name
    again = fixed_design(job, ["caption", "count", "compare"])
    assert [design_key(p) for p in again] == keys
    renamed = Mixture(name="x", volume=200, proportions=dict(points[0].proportions), seed=0)
    assert design_key(renamed) == keys[0]


def test_single_type_grid_collapses_duplicate_points(make_job) -> None:
    job = make_job(design={"volumes": [100], "balance": [0.0, 0.5, 1.0], "seeds": [0]})
    points = fixed_design(job, ["only"])
    assert len(points) == 1
    assert points[0].proportions == {"only": 1.0}


def test_python_objective(make_job) -> None:
    job = make_job()
    mix = Mixture(
        name="m", volume=100, proportions={"caption": 0.5, "count": 0.3, "compare": 0.2}, seed=2
    )
    result = run_python_objective(job, mix)
    assert result.metrics == {"score": pytest.approx(1.0 + 0.01 * math.log(100) + 0.002)}


def test_bad_target_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"no_such_module.*PYTHONPATH=\. ablate"):
        load_target("no_such_module:f")
    with pytest.raises(UserError, match="has no function `nope`"):
        load_target("objectives_for_tests:nope")


def test_lattice_corners_leave_one_out_and_seed_replicates(make_job) -> None:
    from ablate.design import lattice_points
    from ablate.plan import design_mixtures

    assert len(lattice_points(3, 2)) == 6 and len(lattice_points(5, 4)) == 70  # C(m+k-1, k-1)
    types = ["caption", "count", "compare"]
    job = make_job(
        design={"kind": "lattice", "divisions": 2, "volumes": [100, 200], "seeds": [0, 1]}
    )
    points = design_mixtures(job, types)
    assert len(points) == (6 + 1) * 2 * 2  # lattice + centroid, x volumes x seeds
    huge = make_job(design={"kind": "lattice", "divisions": 1_000_000, "volumes": [100]})
    with pytest.raises(UserError, match=r"`design.divisions` 1000000 gives 500,001,500,001 "):
        design_mixtures(huge, types)  # (before: memory ran out, the process was killed)
    assert {tuple(p.proportions.values()) for p in points} >= {
        (0.5, 0.5, 0.0),
        (1 / 3, 1 / 3, 1 / 3),
    }
    corners = design_mixtures(make_job(design={"kind": "corners", "centroid": False}), types)
    assert [p.proportions for p in corners] == [
        {"caption": 1.0, "count": 0.0, "compare": 0.0},
        {"caption": 0.0, "count": 1.0, "compare": 0.0},
        {"caption": 0.0, "count": 0.0, "compare": 1.0},
    ]
    loo = design_mixtures(make_job(design={"kind": "leave_one_out"}), types)
    assert loo[0].proportions == {"caption": 0.0, "count": 0.5, "compare": 0.5}
    assert loo[-1].name.startswith("v100-centroid") and len(loo) == 4


def test_dirichlet_cover_is_deterministic_space_filling_and_respects_min_share(make_job) -> None:
    from ablate.plan import design_mixtures

    types = ["a", "b", "c", "d"]
    design = {
        "kind": "dirichlet",
        "n_trials": 12,
        "min_share": 0.05,
        "prior": {"a": 4, "b": 2, "c": 1, "d": 1},
    }
    job = make_job(design=design, seed=3)
    points = design_mixtures(job, types)
    assert len(points) == 12
    assert [p.proportions for p in points] == [p.proportions for p in design_mixtures(job, types)]
    assert [p.proportions for p in points] != [
        p.proportions for p in design_mixtures(make_job(design=design, seed=4), types)
    ]
    first = points[0].proportions  # the prior itself, mapped onto min_share
    assert first["a"] == pytest.approx(0.05 + 0.8 * 0.5)
    for p in points:
        assert min(p.proportions.values()) >= 0.05 - 1e-12
        assert sum(p.proportions.values()) == pytest.approx(1.0)
    # space filling: the cover's smallest pairwise distance beats that of random draws
    import numpy as np

    def min_gap(ps: list) -> float:
        arr = np.array([list(p.proportions.values()) for p in ps])
        d = np.linalg.norm(arr[:, None] - arr[None], axis=-1)
        return float(d[np.triu_indices(len(arr), 1)].min())

    rand = design_mixtures(make_job(design={**design, "kind": "random"}, seed=3), types)
    assert len(rand) == 12 and min_gap(points) > min_gap(rand)
    # more n_trials extend the design: its first 12 points (and their names) stay
    more = design_mixtures(make_job(design={**design, "n_trials": 20}, seed=3), types)
    assert [(m.name, m.proportions) for m in more[:12]] == [(m.name, m.proportions) for m in points]
    assert len(more) == 20 and min_gap(more) > 0.05


def test_grid_by_concentration_and_user_errors(make_job) -> None:
    from ablate.plan import design_mixtures

    types = ["a", "b", "c"]
    job = make_job(design={"volumes": [100, 200], "concentration": [0.2, 50.0], "seeds": [0]})
    points = design_mixtures(job, types)
    assert [p.name for p in points] == [
        "v100-a0.2-s0",
        "v100-a50-s0",
        "v200-a0.2-s0",
        "v200-a50-s0",
    ]
    assert points[0].proportions == points[2].proportions  # shared across volumes
    assert (
        normalized_entropy(points[1].proportions) > 0.95 > normalized_entropy(points[0].proportions)
    )
    with pytest.raises(UserError, match="prior"):
        design_mixtures(make_job(design={"kind": "random", "prior": {"a": 1}}), types)
