"""A job against its registries: kinds named in a job, `max_share` feasibility, the design's
up-front mixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ablate.errors import UserError
from ablate.plan import design_mixtures, load_job, search_start

TYPES = ["caption", "count", "compare"]


def write_job(tmp_path: Path, **sections: object) -> Path:
    data = {
        "study": "plan",
        "storage": "optuna.db",
        "task_types": TYPES,
        "objective": {"kind": "sim", "metric": "score"},
        "design": {"kind": "grid", "volumes": [1000], "seeds": [0]},
        **sections,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_max_share_caps_that_leave_no_mixture_are_refused(tmp_path: Path) -> None:
    """Each cap alone lay in (0, 1], so 3 caps of 0.2 over 3 types (summing to 0.6) passed and
    the search could never draw a feasible mixture."""
    design = {"kind": "search", "volumes": [1000], "max_share": {t: 0.2 for t in TYPES}}
    with pytest.raises(UserError) as err:
        load_job(write_job(tmp_path, design=design))
    assert "`design.max_share` leaves no mixture" in str(err.value)
    assert "sum to 0.6 < 1" in str(err.value)
    design["max_share"] = {"caption": 0.2, "count": 0.2}  # compare uncapped: feasible
    load_job(write_job(tmp_path, design=design))
    below_floor = {
        "kind": "search",
        "volumes": [1000],
        "min_share": 0.1,
        "max_share": {"count": 0.05},
    }
    with pytest.raises(UserError, match=r"below `design\.min_share`"):
        load_job(write_job(tmp_path, design=below_floor))


def test_warm_start_centroid_is_named_after_the_volume_it_runs(tmp_path: Path) -> None:
    """With `search_volume`, the centroid runs at the geometric middle of the range but was
    named after `volumes[0]`."""
    design = {"kind": "search", "volumes": [1000, 9000], "search_volume": True, "seeds": [4]}
    job = load_job(write_job(tmp_path, design=design))
    (centroid,) = design_mixtures(job, TYPES)
    assert centroid.volume == 3000 and centroid.name == "centroid-v3000" and centroid.seed == 4
    assert centroid.proportions == pytest.approx({t: 1 / 3 for t in TYPES})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "design.kind",
            "gird",
            "`design.kind` 'gird' is not a known design kind (did you mean `grid`?)",
        ),
        (
            "design.warm_start",
            "corner",  # named by its own key (before: as `design.kind`)
            "`design.warm_start` 'corner' is not a known design kind (did you mean `corners`?)",
        ),
        (
            "design.sampler",
            "tpee",
            "`design.sampler` 'tpee' is not a known sampler (did you mean `tpe`?)",
        ),
        (
            "objective.kind",
            "simm",
            "`objective.kind` 'simm' is not a known objective kind (did you mean `sim`?)",
        ),
    ],
)
def test_unknown_kinds_name_the_key_and_the_closest_name(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    path = write_job(tmp_path)
    search = key in ("design.sampler", "design.warm_start")
    overrides = [f"{key}={value}"] + (["design.kind=search"] if search else [])
    with pytest.raises(UserError) as err:
        load_job(path, overrides)
    assert str(err.value).startswith(f"--set {key}={value} (over {path}): {message}")


def test_warm_start_points_count_toward_n_trials_and_keep_the_floor_and_caps(
    tmp_path: Path,
) -> None:
    """`corners` (3 corners and the centroid) at 2 volumes, after the default sampler's centroid
    (at the geometric middle of the searched volumes), are 9 trials: with `n_trials: 5` the search would
    have run 8 and searched none. The corners (shares of 0 and 1) lay below `min_share`
    and above `max_share`."""
    design = {"kind": "search", "volumes": [1000, 4000], "warm_start": "corners", "n_trials": 5,
              "search_volume": True}  # fmt: skip
    with pytest.raises(UserError) as err:
        design_mixtures(load_job(write_job(tmp_path, design=design)), TYPES)
    assert str(err.value).endswith(
        "`design.warm_start` corners and the centroid start the search with 9 trials, more "
        "than `design.n_trials` (5), which counts every trial: raise `design.n_trials` to at "
        "least 9 (the rest are searched), or choose a smaller warm start (fewer `volumes`, "
        "another kind, none)"
    )
    design.update(n_trials=9, min_share=0.05, max_share={"count": 0.5})
    job = load_job(write_job(tmp_path, design=design))
    points, note = search_start(job, TYPES)
    # the count corners broke the cap; the others were raised to the floor as the search maps
    assert (
        note
        == "design.warm_start corners: 2 of its 8 points break `design.max_share` and are left out"
    )
    assert [p.name for p in points] == [
        "centroid-v2000",
        "v1000-only-caption-s0",
        "v1000-only-compare-s0",
        "v1000-centroid-s0",
        "v4000-only-caption-s0",
        "v4000-only-compare-s0",
        "v4000-centroid-s0",
    ]
    assert points[1].proportions == pytest.approx({"caption": 0.9, "count": 0.05, "compare": 0.05})
    for p in points:
        assert min(p.proportions.values()) >= 0.05 - 1e-12 and p.proportions["count"] <= 0.5


def test_an_unknown_design_kind_offers_search_too(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    with pytest.raises(UserError) as err:
        load_job(path, ["design.kind=gird"])
    listed = str(err.value).split("choose one of ")[1].split(", ")
    assert {"grid", "lattice", "corners", "search"} <= set(listed)  # (a plugin may add more)
    with pytest.raises(
        UserError, match=r"'serch' is not a known design kind \(did you mean `search`\?\)"
    ):
        load_job(path, ["design.kind=serch"])


def test_share_bounds_are_checked_against_the_pools_types_when_the_job_lists_none(
    tmp_path: Path,
) -> None:
    """With `task_types` left to the pool, a floor of 0.3 passed for 4 types (config knows no
    k) and every design broke it: dirichlet shares of 0, a search map turned upside down."""
    import json

    from ablate.plan import job_task_types
    from ablate.pool import ImportRequest, import_pool

    labels = ["caption", "count", "compare", "ocr"]
    records = [
        {"id": f"r{i}", "kind": labels[i % 4],
         "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": f"a{i}"}]}
        for i in range(40)
    ]  # fmt: skip
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    import_pool(
        ImportRequest(
            source=tmp_path / "d.jsonl",
            out=tmp_path / "pool",
            labels=(("task_type", "field:kind"),),
        )
    )
    shared = {"pool": str(tmp_path / "pool"), "task_types": []}
    for kind in ("dirichlet", "search"):
        design = {"kind": kind, "volumes": [20], "seeds": [0], "min_share": 0.3, "n_trials": 6}
        job = load_job(write_job(tmp_path, design=design, **shared))  # k unknown until the pool
        with pytest.raises(UserError) as err:
            job_task_types(job)
        assert "`design.min_share` must lie in [0, 1/4) for the 4 task types" in str(err.value)
        assert "caption, compare, count, ocr" in str(err.value) and "1.2 > 1" in str(err.value)
    design = {"kind": "search", "volumes": [20], "seeds": [0], "max_share": {"ocrr": 0.5}}
    job = load_job(write_job(tmp_path, design=design, **shared))
    with pytest.raises(UserError, match=r"names 'ocrr', .* \(did you mean `ocr`\?\)"):
        job_task_types(job)
    fine = {"kind": "dirichlet", "volumes": [20], "seeds": [0], "min_share": 0.2, "n_trials": 6}
    job = load_job(write_job(tmp_path, design=fine, **shared))
    mixtures = design_mixtures(job, job_task_types(job))
    assert len(mixtures) == 6
    assert min(min(m.proportions.values()) for m in mixtures) >= 0.2 - 1e-9


def test_a_dirichlet_or_random_warm_start_leaves_the_budget_to_the_search(tmp_path: Path) -> None:
    """They drew `n_trials` points, the search's whole budget: nothing was searched."""
    for kind in ("dirichlet", "random"):
        design = {"kind": "search", "volumes": [1000], "warm_start": kind, "n_trials": 20}
        points, _ = search_start(load_job(write_job(tmp_path, design=design)), TYPES)
        same = kind == "dirichlet"  # its cover starts at the prior, the centroid: one trial
        assert len(points) == 1 + 5 - same  # the centroid, then a quarter of the budget
        design["n_startup"] = 3
        points, _ = search_start(load_job(write_job(tmp_path, design=design)), TYPES)
        assert len(points) == 1 + 3 - same
