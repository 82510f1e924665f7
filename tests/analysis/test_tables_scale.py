"""Mixture labels at scale: the column-wise `_labels` (one pass over the trials; per-group work
only for names several mixtures share) gives exactly the labels of the row-by-row version it
replaced (`old_identity` / `old_labels`, kept as the reference in
benchmarks/analysis_scale_benchmark.py), on a large grid study,
on a study extended after a design change (names shared by several mixtures), and with model
and settings columns. Tables are built in memory (no storage)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
from paths_for_tests import REPO

from ablate.analysis import mixture_table
from ablate.analysis.tables import design_points, mixture_keys

sys.path.insert(0, str(REPO / "benchmarks"))
from analysis_scale_benchmark import old_identity as _old_identity
from analysis_scale_benchmark import old_labels as _old_labels


def old_mixture_keys(done: Any) -> Any:
    names = done["mixture"].astype("string").str.replace(r"-s\d+$", "", regex=True)
    return _old_labels(_old_identity(done), names)


def old_design_points(df: Any) -> Any:
    parts = _old_identity(df)
    parts["seed"] = df["seed"].astype(float).map(lambda s: f"seed {s:.12g}")
    return _old_labels(parts, df["mixture"].astype("string"))


TYPES = ["a", "b", "c", "d", "e", "f"]


def study(n_mixtures: int, seeds: int, seed: int = 0, **extra: Any) -> Any:
    """A grid-like study; every 7th mixture is named like another one (a design change), every
    11th has no name, 1% of trials failed."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(n_mixtures):
        shares = rng.dirichlet(np.ones(len(TYPES)))
        volume = float(rng.choice([1000, 5000, 20000]))
        name = None if m % 11 == 3 else f"v{volume:g}-mix{m - 1 if m % 7 == 6 else m}"
        for s in range(seeds):
            failed = rng.random() < 0.01
            rows.append({
                "trial": len(rows), "state": "FAIL" if failed else "COMPLETE",
                "value": np.nan if failed else float(rng.normal(0.6, 0.05)),
                "mixture": f"{name}-s{s}" if name else None, "volume": volume,
                "balance": 0.5, "seed": s, "seconds": 60.0, "gpu_seconds": 60.0,
                **{f"p/{t}": float(x) for t, x in zip(TYPES, shares, strict=True)},
            })  # fmt: skip
    df = pd.DataFrame(rows)
    for col, values in extra.items():
        df[col] = [values[i % len(values)] for i in range(len(df))]
    df.attrs.update(metric="value", direction="maximize", study="s", task_types=TYPES)
    return df


def _check_same(df: Any) -> None:
    done = df[df["state"] == "COMPLETE"]
    new, old = mixture_keys(done), old_mixture_keys(done)
    pd.testing.assert_series_equal(new, old, check_names=False)
    pd.testing.assert_series_equal(design_points(df), old_design_points(df), check_names=False)


def test_labels_match_the_row_by_row_version_on_a_large_study() -> None:
    df = study(120, 3)
    _check_same(df)
    keys = mixture_keys(df[df["state"] == "COMPLETE"])
    assert keys.str.contains(r" \(", regex=True).any()  # shared names were told apart
    assert keys.nunique() == 120


def test_labels_match_with_models_and_settings() -> None:
    _check_same(study(40, 3, seed=1, model=["small", "small", "big"], settings=["x", "y"]))


def test_labels_match_with_one_task_type_and_no_names() -> None:
    df = study(30, 2, seed=2)
    df = df.drop(columns=[f"p/{t}" for t in TYPES[1:]])
    df.attrs["task_types"] = TYPES[:1]
    df["mixture"] = None
    _check_same(df)


def test_mixture_table_numbers_unchanged() -> None:
    df = study(60, 3, seed=3)
    table = mixture_table(df)
    done = df[df["state"] == "COMPLETE"]
    by_old = done.groupby(old_mixture_keys(done))["value"].agg(["mean", "count"])
    pd.testing.assert_series_equal(
        table.loc[by_old.index, "mean"], by_old["mean"], check_names=False
    )
    assert (table.loc[by_old.index, "seeds"] == by_old["count"]).all()
