"""Mixture labels of a large study: the column-wise `tables._labels` against the row-by-row
version it replaced (kept below as `old_*`), in the same run, on tables shaped like a grid sweep.

    python benchmarks/analysis_scale_benchmark.py [--trials 1000 5000] [--repeats 3]

The table: 8 volumes x B balance levels x 5 seeds over 6 task types, named as the grid design
names its points (`v1000-b0.27-s3`), so that with B = 125 levels (0.0065 apart) several levels
share a 2-decimal name, as in a real fine grid; 1% of trials failed. `mixture_keys` (the
mixtures table, the surrogates' groups, the plots) and `design_points` (the failures) run 5
times per `ablate report`. Also: the rows of each mixture for the bootstrap (one scan of all
trials per mixture before, one stable sort now). Both sides must give the same labels / rows;
the script checks that and prints the ratio old / new.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

from ablate.analysis.load import task_types
from ablate.analysis.tables import GROUP_COLUMNS, design_points, mixture_keys
from ablate.design import proportions_for_balance

TYPES = ["captioning", "counting", "comparison", "reasoning", "ocr", "spatial"]
VOLUMES = [1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000]


def grid_table(n: int, seeds: int = 5) -> Any:
    """n trials of a grid sweep (n / 8 / seeds balance levels), as `ablate.analysis.load` reads them."""
    levels = np.linspace(0.2, 1.0, n // len(VOLUMES) // seeds)
    rng = np.random.default_rng(0)
    rows = []
    for v in VOLUMES:
        for b in levels:
            props = proportions_for_balance(TYPES, float(b))
            for s in range(seeds):
                failed = rng.random() < 0.01
                rows.append({
                    "trial": len(rows), "state": "FAIL" if failed else "COMPLETE",
                    "value": np.nan if failed else float(rng.normal(0.6, 0.05)),
                    "mixture": f"v{v}-b{b:.2f}-s{s}", "volume": float(v), "balance": float(b),
                    "seed": s, "model": "", "settings": "abc123",
                    **{f"p/{t}": p for t, p in props.items()},
                })  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs.update(metric="value", direction="maximize", study="bench", task_types=TYPES)
    return df


def old_identity(done: Any) -> Any:
    cols = [f"p/{t}" for t in task_types(done)]
    parts = pd.DataFrame(index=done.index)
    parts["volume"] = "v" + done["volume"].astype(float).map(lambda v: f"{v:.12g}")
    shares = pd.DataFrame(
        {c: (done[c].astype(float).round(3) + 0.0).map("{:g}".format) for c in cols}
    )
    parts["shares"] = shares.agg("/".join, axis=1) if cols else ""
    for col in GROUP_COLUMNS:
        if col in done:
            parts[col] = done[col].fillna("").astype(str)
    return parts


def old_labels(parts: Any, names: Any) -> Any:
    if parts.empty:
        return names.astype(str)
    key = parts.agg("|".join, axis=1)
    fallback = parts["volume"] + "-" + parts["shares"]
    base = names.groupby(key).transform("first").fillna(fallback).astype(str)
    label = {}
    for name, same in parts.assign(key=key, base=base).drop_duplicates("key").groupby("base"):
        differ = [c for c in parts.columns if same[c].nunique() > 1]
        for row in same.to_dict("records"):
            what = [
                row[c] if c in ("volume", "shares", "seed") else f"{c} {row[c]}" for c in differ
            ]
            label[row["key"]] = f"{name} ({', '.join(what)})" if differ else str(name)
    return key.map(label)


def old_both(df: Any) -> tuple[Any, Any]:
    done = df[df["state"] == "COMPLETE"]
    names = done["mixture"].astype("string").str.replace(r"-s\d+$", "", regex=True)
    keys = old_labels(old_identity(done), names)
    parts = old_identity(df)
    parts["seed"] = df["seed"].astype(float).map(lambda s: f"seed {s:.12g}")
    return keys, old_labels(parts, df["mixture"].astype("string"))


def new_both(df: Any) -> tuple[Any, Any]:
    return mixture_keys(df[df["state"] == "COMPLETE"]), design_points(df)


def old_rows(groups: np.ndarray) -> dict[Any, np.ndarray]:
    uniq = np.unique(groups)
    return {g: np.flatnonzero(groups == g) for g in uniq}


def new_rows(groups: np.ndarray) -> dict[Any, np.ndarray]:
    uniq, inverse = np.unique(groups, return_inverse=True)
    by_group = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    return dict(zip(uniq, by_group, strict=True))


def timed(fn: Any, arg: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(arg)
    return time.perf_counter() - start, out


def compare(label: str, old: Any, new: Any, arg: Any, repeats: int, same: Any) -> None:
    olds, news = [], []
    for _ in range(repeats):  # alternate the two sides
        t_old, a = timed(old, arg)
        t_new, b = timed(new, arg)
        same(a, b)
        olds.append(t_old)
        news.append(t_new)
    o, n = statistics.median(olds), statistics.median(news)
    print(f"{label:<44} old {o * 1e3:9.1f} ms  new {n * 1e3:7.1f} ms  old/new {o / n:6.1f}x")


def same_labels(a: Any, b: Any) -> None:
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_series_equal(x, y, check_names=False)


def same_rows(a: Any, b: Any) -> None:
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    for n in args.trials:
        df = grid_table(n)
        keys = mixture_keys(df[df["state"] == "COMPLETE"])
        print(f"{n} trials, {keys.nunique()} mixtures, {df['mixture'].nunique()} trial names")
        compare(f"  mixture_keys + design_points ({n})", old_both, new_both, df, args.repeats,
                same_labels)  # fmt: skip
        compare(f"  rows per mixture for the bootstrap ({n})", old_rows, new_rows,
                keys.to_numpy(), args.repeats, same_rows)  # fmt: skip


if __name__ == "__main__":
    main()
