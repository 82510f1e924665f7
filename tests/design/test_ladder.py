"""The ladder design's pure parts: rung 0, the ranking of a finished rung (direction, ties,
failed mixtures), how many are promoted, and the jobs refused before any training."""

from __future__ import annotations

from typing import Any

import pytest

from ablate.config import JobSpec, build
from ablate.design import design_key
from ablate.design.kinds.ladder import (
    ladder_models,
    mixture_key,
    point_name,
    rank_rung,
    rung_points,
)
from ablate.errors import UserError
from ablate.plan import check_job_kinds, design_mixtures

TYPES = ["caption", "count", "compare"]
MODELS = [
    {"name": "big", "path": "b", "size": 7e9},
    {"name": "small", "path": "s", "size": 0.5e9},
    {"name": "mid", "path": "m", "size": 2e9},
]


def ladder_job(**design: Any) -> JobSpec:
    data: dict[str, Any] = {
        "study": "ladder",
        "task_types": TYPES,
        "models": design.pop("models", MODELS),
        "objective": {
            "kind": "sim",
            "metric": "score",
            "direction": design.pop("direction", "maximize"),
        },
        "design": {
            "kind": "ladder",
            "volumes": [1000, 5000],
            "balance": [0.2, 0.4, 0.6, 0.8, 1.0],
            "seeds": [0, 1],
            "promote": 0.34,
            **design,
        },
    }
    return build(JobSpec, data, "test")


def test_rung_zero_is_every_grid_point_on_the_smallest_model() -> None:
    job = ladder_job()
    assert [m.name for m in ladder_models(job)] == ["small", "mid", "big"]
    points = design_mixtures(job, TYPES)
    assert len(points) == 2 * 5 * 2 and {p.model for p in points} == {"small"}
    assert points[0].name == "small-v1000-b0.20-s0" and point_name(points[0]) == "v1000-b0.20"
    unsized = ladder_job(models=[{**m, "size": None} for m in MODELS])
    assert [m.name for m in ladder_models(unsized)] == ["big", "small", "mid"]  # listed order


def test_a_finished_rung_promotes_the_best_third_by_mean_over_seeds() -> None:
    job = ladder_job()
    points = rung_points(job, TYPES, 0, None)
    # score = the balance level, except v5000-b0.40 whose seeds average highest (0.95)
    values: dict[str, list[float]] = {}
    for p in points:
        level = float(point_name(p).split("-b")[1]) / 10 + p.volume / 1e5
        if point_name(p) == "v5000-b0.40":
            level = 0.9 if p.seed == 0 else 1.0
        values[design_key(p)] = [level]
    rung = rank_rung(job, 0, points, values)
    assert len(rung.ranked) == 10 and rung.model == "small"
    assert [r.name for r in rung.ranked[:3]] == ["v5000-b0.40", "v5000-b1.00", "v5000-b0.80"]
    assert rung.ranked[0].mean == pytest.approx(0.95)
    assert len(rung.promoted) == 3  # floor(0.34 x 10)
    nxt = rung_points(job, TYPES, 1, rung.promoted)
    assert len(nxt) == 6 and {p.model for p in nxt} == {"mid"}  # 3 mixtures x 2 seeds
    assert {mixture_key(p) for p in nxt} == set(rung.promoted)
    lo, hi = rung.ranked[0].interval()
    assert lo < 0.95 < hi  # t interval over the two seeds


def test_minimize_ties_and_a_mixture_with_no_completed_seed() -> None:
    job = ladder_job(direction="minimize", volumes=[1000])
    points = rung_points(job, TYPES, 0, None)  # 5 mixtures x 2 seeds
    values = {design_key(p): [1.0] for p in points}  # all tie ...
    failed = [p for p in points if point_name(p) == "v1000-b0.20"]
    for p in failed:
        values.pop(design_key(p))  # ... but b0.20 has no completed seed
    values[design_key(points[-1])] = [0.5]  # b1.00 seed 1 is the lowest: mean 0.75
    rung = rank_rung(job, 0, points, values)
    assert [r.name for r in rung.ranked] == [
        "v1000-b1.00",
        "v1000-b0.40",  # the tie keeps the design's order
        "v1000-b0.60",
        "v1000-b0.80",
    ]
    assert rung.unranked == ["v1000-b0.20"]
    assert len(rung.promoted) == 1  # floor(0.34 x 5): the failed mixture still counts in n
    last = rank_rung(job, 2, points, values)
    assert last.promoted == []  # the largest model promotes nothing


@pytest.mark.parametrize(
    ("design", "message"),
    [
        ({"models": MODELS[:1]}, "needs at least two entries in `models:`"),
        ({"ladder_of": "search"}, "`design.ladder_of: search` is not a thing"),
        ({"promote": 1.0}, "strictly between 0 and 1"),
    ],
)
def test_bad_ladders_are_refused_when_the_job_is_read(design: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        check_job_kinds(ladder_job(**design), "job.yaml")


def test_a_share_that_promotes_nothing_is_refused_with_the_share_that_would() -> None:
    job = ladder_job(volumes=[1000], balance=[0.5, 1.0], promote=0.34)  # 2 mixtures
    with pytest.raises(UserError) as err:
        design_mixtures(job, TYPES)
    msg = str(err.value)
    assert "promotes no mixture from rung 0 (2 mixture(s): floor(0.34 x 2) = 0)" in msg
    assert "at least 0.5" in msg
    # 4 mixtures: 4 -> 1 -> floor(0.34) = 0 on the third size
    with pytest.raises(UserError, match=r"from rung 1 \(1 mixture"):
        design_mixtures(ladder_job(volumes=[1000], balance=[0.25, 0.5, 0.75, 1.0]), TYPES)


def test_promote_within_volume_keeps_every_volume_on_every_model() -> None:
    """More data scores higher on every model: ranked together, the promoted mixtures were all
    of the largest volume, and the target could not test "less is more". Within each volume,
    the best share of each is promoted: 10 mixtures over 2 volumes at promote 0.5 -> 2 + 2."""
    together, within = ladder_job(promote=0.5), ladder_job(promote=0.5, promote_within="volume")
    points = rung_points(together, TYPES, 0, None)
    values = {design_key(p): [p.volume / 1e3 + float(point_name(p).split("-b")[1])] for p in points}
    assert {point_name(p)[:5] for p in points} == {"v1000", "v5000"}
    ranked_together = rank_rung(together, 0, points, values)
    names = {r.key: r.name for r in ranked_together.ranked}
    promoted = [names[k] for k in ranked_together.promoted]
    assert len(promoted) == 5 and all(n.startswith("v5000") for n in promoted)
    rung = rank_rung(within, 0, points, values)
    assert [names[k] for k in rung.promoted] == [
        "v5000-b1.00",
        "v5000-b0.80",
        "v1000-b1.00",
        "v1000-b0.80",
    ]  # fmt: skip  (best first, as ranked)
    nxt = rung_points(within, TYPES, 1, rung.promoted)
    assert {p.volume for p in nxt} == {1000, 5000} and len(nxt) == 4 * 2
    values.update(
        {design_key(p): [p.volume / 1e3 + float(point_name(p).split("-b")[1])] for p in nxt}
    )
    top = rank_rung(within, 1, nxt, values)
    assert len(top.promoted) == 2 and {names[k][:5] for k in top.promoted} == {"v1000", "v5000"}


def test_promote_within_is_checked_per_volume_and_by_name() -> None:
    job = ladder_job(promote=0.34, promote_within="volume", volumes=[1000, 5000],
                     balance=[0.25, 0.5, 0.75, 1.0])  # fmt: skip
    with pytest.raises(UserError, match=r"from rung 1 at volume 1,000 \(1 mixture"):
        design_mixtures(job, TYPES)  # 4 -> 1 per volume, then floor(0.34) = 0
    with pytest.raises(
        UserError, match=r"`design\.promote_within: model` is not one of all, volume"
    ):
        check_job_kinds(ladder_job(promote_within="model"), "job.yaml")
