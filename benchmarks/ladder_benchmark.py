"""The ladder design (issue 15) on sim studies across three model sizes, without Ray.

    python benchmarks/ladder_benchmark.py [--landscapes 50] [--rho 0.8] [--promote 0.34]

Each landscape seed is one study: models proxy (0.5B), mid (2B) and target (7B) on one sim
landscape with `objective.rank_correlation` rho between the proxy's and the target's mixture
rankings (`ablate.objectives.sim_sizes`), noise 0.01 per (mixture, seed), mixtures from a
simplex lattice (3 types, divisions 4, + centroid = 15) x volumes [1000, 5000] = 30 mixtures,
3 seeds each. The ladder runs the same functions as a sweep (`ablate.design.kinds.ladder`:
`rung_points`, `rank_rung`) on the simulated scores of each rung: 30 -> 10 -> 3 mixtures.

Success: the ladder's pick (best mean over seeds on the target) has a noise-free target score
within 1% of the best noise-free target score over the 30 mixtures. Cost: GPU-seconds per
trial proportional to the model's parameters (same tokens per trial: compute ~ 6 N tokens),
against the full grid (30 x 3 trials) on the target. Baselines in the same run, on the same
landscapes: the full grid on the target (best mean over seeds, 100% of the cost), the proxy
alone (its best mixture, taken to the target untested), and the target grid cut to the
ladder's budget (a random subset of the mixtures, all seeds).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from typing import Any

import numpy as np

from ablate.config import JobSpec, build
from ablate.design import design_key
from ablate.design.kinds.ladder import ladder_models, mixture_key, rank_rung, rung_points
from ablate.mixture import Mixture
from ablate.objectives.sim_sizes import sized_sim_score

TYPES = ["a", "b", "c"]
SIZES = {"proxy": 0.5e9, "mid": 2e9, "target": 7e9}


def make_job(landscape: str, seed: int, rho: float, promote: float, noise: float) -> JobSpec:
    data = {
        "study": "ladder-benchmark",
        "task_types": TYPES,
        "models": [{"name": n, "path": n, "size": s} for n, s in SIZES.items()],
        "objective": {
            "kind": "sim",
            "metric": "score",
            "landscape": landscape,
            "landscape_seed": seed,
            "noise": noise,
            "rank_correlation": rho,
        },
        "design": {
            "kind": "ladder",
            "ladder_of": "lattice",
            "divisions": 4,
            "volumes": [1000, 5000],
            "seeds": [0, 1, 2],
            "promote": promote,
        },
    }
    return build(JobSpec, data, "ladder_benchmark")


def score(job: JobSpec, p: Mixture, model: str) -> tuple[float, float]:
    """(noisy, clean) score of point `p` on `model`, as the sim objective computes it."""
    o = job.objective
    return sized_sim_score(
        o.landscape,
        dict(p.proportions),
        TYPES,
        p.volume,
        p.seed,
        o.landscape_seed,
        o.noise,
        list(SIZES.values()),
        SIZES[model],
        o.rank_correlation,
    )


def best_by_mean(points: list[Mixture], values: dict[str, list[float]]) -> str:
    means: dict[str, list[float]] = {}
    for p in points:
        means.setdefault(mixture_key(p), []).extend(values[design_key(p)])
    return max(means, key=lambda k: float(np.mean(means[k])))


def one_study(job: JobSpec, rng: np.random.Generator) -> dict[str, Any]:
    base = rung_points(job, TYPES, 0, None)
    n_mix = len({mixture_key(p) for p in base})
    target = "target"
    clean = {mixture_key(p): score(job, p, target)[1] for p in base}  # noise-free target score
    best_clean = max(clean.values())

    def ok(key: str) -> bool:
        return clean[key] >= 0.99 * best_clean

    gpu_s = 0.0  # in units of one target trial
    promoted: list[str] | None = None
    for r, model in enumerate(ladder_models(job)):
        points = rung_points(job, TYPES, r, promoted)
        values = {design_key(p): [score(job, p, model.name)[0]] for p in points}
        gpu_s += len(points) * SIZES[model.name] / SIZES[target]
        rung = rank_rung(job, r, points, values)
        if r == 0:
            proxy_pick = rung.ranked[0].key
        promoted = rung.promoted or [rung.ranked[0].key]
    ladder_pick = promoted[0]
    full = len(base)  # the full grid on the target, in target trials
    target_values = {design_key(p): [score(job, p, target)[0]] for p in on(base, target)}
    grid_pick = best_by_mean(on(base, target), target_values)
    n_cut = max(1, round(n_mix * gpu_s / full))  # mixtures the ladder's budget buys
    keys = sorted(clean)
    cut = set(rng.choice(len(keys), size=n_cut, replace=False).tolist())
    cut_points = [p for p in on(base, target) if keys.index(mixture_key(p)) in cut]
    cut_pick = best_by_mean(cut_points, target_values)
    return {
        "ladder": ok(ladder_pick),
        "grid": ok(grid_pick),
        "proxy": ok(proxy_pick),
        "cut": ok(cut_pick),
        "ladder_gap": 1 - clean[ladder_pick] / best_clean,
        "cost": gpu_s / full,
    }


def on(points: list[Mixture], model: str) -> list[Mixture]:
    return [dataclasses.replace(p, model=model) for p in points]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--landscapes", type=int, default=50)
    ap.add_argument("--rho", type=float, default=0.8)
    ap.add_argument("--promote", type=float, default=0.34)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--kinds", default="less_is_more,synergy,harmful")
    args = ap.parse_args()
    print(
        "| landscape | studies | ladder within 1% | full target grid | proxy alone "
        "| target grid at the ladder's budget | ladder GPU-hours / full grid | ladder gap (median) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind in args.kinds.split(","):
        rng = np.random.default_rng(0)
        rows = [
            one_study(make_job(kind, s, args.rho, args.promote, args.noise), rng)
            for s in range(args.landscapes)
        ]
        share = {k: sum(r[k] for r in rows) / len(rows) for k in ("ladder", "grid", "proxy", "cut")}
        cost = statistics.mean(r["cost"] for r in rows)
        gap = statistics.median(r["ladder_gap"] for r in rows)
        print(
            f"| {kind} (rho {args.rho:g}) | {len(rows)} | {share['ladder']:.0%} | "
            f"{share['grid']:.0%} | {share['proxy']:.0%} | {share['cut']:.0%} | {cost:.1%} | "
            f"{gap:.2%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
