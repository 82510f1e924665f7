from __future__ import annotations

import math

import pytest

from ablate.design import (
    balance_of,
    design_key,
    dominant_share,
    grid_design,
    proportions_for_balance,
)
from ablate.errors import UserError
from ablate.mixture import Mixture
from ablate.objectives import load_target, run_python_objective


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("level", [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
def test_balance_level_is_hit(k: int, level: float) -> None:
    types = [f"t{i}" for i in range(k)]
    props = proportions_for_balance(types, level)
    assert math.isclose(sum(props.values()), 1.0, abs_tol=1e-12)
    assert abs(balance_of(props) - level) < 1e-9
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
    points = grid_design(job, ["caption", "count", "compare"])
    assert len(points) == 2 * 2 * 3
    assert points[0].name == "v200-b0.50-s0"
    assert points[-1].name == "v1000-b1.00-s2"
    assert all(p.taxonomy == "task_type" for p in points)
    keys = [design_key(p) for p in points]
    assert len(set(keys)) == len(keys)
    # the key is stable and ignores the name
    again = grid_design(job, ["caption", "count", "compare"])
    assert [design_key(p) for p in again] == keys
    renamed = Mixture(name="x", volume=200, proportions=dict(points[0].proportions), seed=0)
    assert design_key(renamed) == keys[0]


def test_single_type_grid_collapses_duplicate_points(make_job) -> None:
    job = make_job(design={"volumes": [100], "balance": [0.0, 0.5, 1.0], "seeds": [0]})
    points = grid_design(job, ["only"])
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
    with pytest.raises(UserError, match=r"no_such_module.*sys\.path"):
        load_target("no_such_module:f")
    with pytest.raises(UserError, match="has no function `nope`"):
        load_target("objectives_for_tests:nope")
