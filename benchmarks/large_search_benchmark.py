"""Proposals in a large search: seconds per proposal, and how good it is, past 300 trials.

    python benchmarks/large_search_benchmark.py [--sizes 100,300,1000,3000] [--exact-max 1000]

The default sampler's GP costs O(n^3) per proposal in the n results; past `MAX_GP_TRIALS` (300)
it models a subset (`gp_subset`: the best half and the most recent of the rest). Baseline in the
same run: the same sampler modelling every result (`gp_trials=None`), up to `--exact-max`
trials (past it, minutes per proposal). Each study: n finished trials of flat-Dirichlet mixtures
over 5 task types at the landscape's peak volume, scored by a built-in landscape with seed noise
0.005 (search_benchmark's jobs), one per landscape x `--seeds` landscape seeds; then one ask
(and `suggest`, as the driver asks) timed. Figures: the median seconds per proposal, and the
proposal's noise-free score (the optimum is 1) against the best tried trial's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
from search_benchmark import make_job

TYPES = [f"t{i}" for i in range(5)]


def history(job: Any, n: int, seed: int) -> tuple[list[Any], float]:
    """n finished trials of random mixtures, and the best one's noise-free score."""
    import optuna

    from ablate.mixture import Mixture
    from ablate.objectives import sim_score
    from ablate.search import cube_params

    rng = np.random.default_rng(seed)
    obj, trials, best = job.objective, [], 0.0
    for i in range(n):
        shares = dict(zip(TYPES, rng.dirichlet(np.ones(len(TYPES))).tolist(), strict=True))
        mix = Mixture(name=f"r{i}", volume=5000, proportions=shares, seed=i)
        params = cube_params(job, TYPES, mix)
        value, clean = sim_score(
            obj.landscape, shares, TYPES, 5000, i, obj.landscape_seed, obj.noise
        )
        dists = {p: optuna.distributions.FloatDistribution(0.0, 1.0) for p in params}
        trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=value))
        best = max(best, clean)
    return trials, best


def one_ask(job: Any, trials: list[Any], gp_trials: int | None) -> tuple[float, float]:
    """Seconds for one proposal on a study of `trials`, and its noise-free score."""
    import optuna

    from ablate.objectives import sim_score
    from ablate.search import suggest
    from ablate.search.mixture_sampler import MixtureSampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = MixtureSampler(job, seed=len(trials), gp_trials=gp_trials)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.add_trials(trials)
    start = time.perf_counter()
    mix = suggest(study.ask(), job, TYPES)
    seconds = time.perf_counter() - start
    obj = job.objective
    _, clean = sim_score(
        obj.landscape, dict(mix.proportions), TYPES, mix.volume, 0, obj.landscape_seed, 0.0
    )
    return seconds, clean


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="100,300,1000,3000")
    ap.add_argument("--exact-max", type=int, default=1000, help="largest study for the baseline")
    ap.add_argument("--seeds", type=int, default=2, help="landscape seeds per landscape")
    args = ap.parse_args()
    from ablate.objectives import LANDSCAPES
    from ablate.search.mixture_sampler import MAX_GP_TRIALS

    print(
        "| trials | GP on | s / proposal | proposal's score (median, min) | best tried (median) |"
    )
    print("|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        rows: dict[str, list[tuple[float, float]]] = {}
        bests = []
        for land in LANDSCAPES:
            for seed in range(args.seeds):
                job = make_job({"sampler": "default"}, land, seed, 0.005, TYPES)
                trials, best = history(job, n, seed)
                bests.append(best)
                sides = {f"subset (<= {MAX_GP_TRIALS})": MAX_GP_TRIALS}
                if n <= args.exact_max:
                    sides["all results (before)"] = None
                for side, cap in sides.items():
                    rows.setdefault(side, []).append(one_ask(job, trials, cap))
        for side, got in rows.items():
            secs, scores = [s for s, _ in got], [c for _, c in got]
            print(
                f"| {n} | {side} | {statistics.median(secs):.2f} | "
                f"{statistics.median(scores):.4f}, {min(scores):.4f} | "
                f"{statistics.median(bests):.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
