"""Search efficiency on the built-in sim landscapes: trials until a mixture within 1% of the optimum.

    python benchmarks/search_benchmark.py [--seeds 10] [--budget 40] [--noise 0.005] [--types 5]

Every strategy runs the same ask -> suggest -> tell loop the driver runs (one trial in flight),
with `ablate.search.make_sampler`, `suggest` and the warm start the driver enqueues, on each
landscape of `ablate.objectives` (sim landscapes) (5 task types, volume fixed at the peak, small Gaussian noise). For
each (strategy, landscape, seed) it records the first trial whose NOISE-FREE score is at least
0.99 x the optimum (budget + 1 when none is). The table gives medians over seeds; the baseline
is Optuna's TPESampler with the FAQ recipe (x_i = -log(u_i), p = x / sum(x)).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from ablate.config import JobSpec, build

STRATEGIES: dict[str, dict[str, Any]] = {
    "default (centroid + maximin + GP EI on sqrt shares)": {"sampler": "default"},
    "TPE, FAQ -log(u) recipe (baseline)": {"sampler": "tpe", "parameterization": "logu"},
    "TPE, stick": {"sampler": "tpe"},
    "GP, stick (plain)": {"sampler": "gp"},
    "CMA-ES, stick": {"sampler": "cmaes"},
    "QMC Sobol, stick": {"sampler": "qmc"},
    "random Dirichlet": {"sampler": "random"},
}


def make_job(
    design: dict[str, Any], landscape: str, seed: int, noise: float, types: list[str]
) -> JobSpec:
    data = {
        "study": "bench",
        "storage": "unused",
        "task_types": types,
        "seed": seed,
        "objective": {
            "kind": "sim",
            "landscape": landscape,
            "landscape_seed": seed,
            "noise": noise,
            "metric": "score",
        },
        "design": {"kind": "search", "volumes": [5000], "n_trials": 40, **design},
    }
    return build(JobSpec, data, "search_benchmark")


def trials_to_reach(
    job: JobSpec, types: list[str], budget: int, tol: float = 0.01, sampler: Any = None, k: int = 1
) -> int:
    """Run one search in memory with `k` trials in flight (the oldest is told before the next
    is asked, as the dispatcher runs them); the 1-based number of the first trial within tol of
    the optimum. `sampler`: the driver's `make_sampler` unless given."""
    from collections import deque

    import optuna

    from ablate.objectives import sim_score
    from ablate.plan import design_mixtures
    from ablate.search import cube_params, make_sampler, suggest

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = make_sampler(job, 0) if sampler is None else sampler
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for mix in design_mixtures(job, types):
        study.enqueue_trial(cube_params(job, types, mix))
    obj = job.objective
    flight: deque[tuple[Any, float]] = deque()
    for n in range(1, budget + 1):
        if len(flight) == k:  # the oldest finishes before the next is asked
            study.tell(*flight.popleft())
        trial = study.ask()
        mix = suggest(trial, job, types)
        value, clean = sim_score(
            obj.landscape,
            dict(mix.proportions),
            types,
            mix.volume,
            mix.seed,
            obj.landscape_seed,
            obj.noise,
        )
        # the optimum's noise-free score at the peak volume is exactly 1; trials finish in
        # order, so every earlier one was below
        if clean >= 1.0 - tol:
            return n
        flight.append((trial, value))
    return budget + 1


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--noise", type=float, default=0.005)
    ap.add_argument("--types", type=int, default=5)
    ap.add_argument("--only", default="", help="run only strategies whose name contains this")
    args = ap.parse_args()
    from ablate.objectives import LANDSCAPES

    types = [f"t{i}" for i in range(args.types)]
    rows = []
    for name, design in STRATEGIES.items():
        if args.only and args.only not in name:
            continue
        start = time.perf_counter()
        per_land = {}
        alls = []
        for land in LANDSCAPES:
            hits = [
                trials_to_reach(make_job(design, land, s, args.noise, types), types, args.budget)
                for s in range(args.seeds)
            ]
            per_land[land] = statistics.median(hits)
            alls += hits
        rows.append((name, statistics.median(alls), per_land, time.perf_counter() - start, alls))
        print(
            f"{name}: median {statistics.median(alls)}  {per_land}  ({time.perf_counter() - start:.0f}s)",
            flush=True,
        )
    print()
    lands = list(LANDSCAPES)
    print(f"| strategy | median, all | {' | '.join(lands)} | reached | mean of reached | seconds |")
    print("|---" * (len(lands) + 5) + "|")
    for name, med, per, sec, alls in rows:
        hit = [h for h in alls if h <= args.budget]
        mean = f"{statistics.mean(hit):.1f}" if hit else "-"
        print(
            f"| {name} | {med:g} | {' | '.join(f'{per[x]:g}' for x in lands)} "
            f"| {len(hit)}/{len(alls)} | {mean} | {sec:.0f} |"
        )


if __name__ == "__main__":
    main()
