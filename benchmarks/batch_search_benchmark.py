"""Search with trials in flight: trials until a mixture within 1% of the optimum, k = 1, 8, 32.

    python benchmarks/batch_search_benchmark.py [--seeds 5] [--budget 48] [--in-flight 1,8,32]

A sweep with `max_in_flight: k` asks k trials before the first result comes back, and from then
on asks one trial each time one finishes, so each proposal knows all but the last k - 1 trials.
This runs that loop without Ray, as the dispatcher does: ask (and `suggest`) until k trials are
in flight, then tell the oldest and ask again (trials finish in the order they were asked). The
trials in flight are RUNNING in Optuna with their parameters set, which is what a sampler sees
in a real sweep. Same jobs as benchmarks/search_benchmark.py (5 task types, volume fixed at the
peak, noise sd 0.005; the driver's `make_sampler`, `suggest` and warm start), on every built-in
landscape x `--seeds` landscape seeds. Figure: the number of the first trial whose noise-free
score is within 1% of the optimum (budget + 1 when none is); medians over landscapes and seeds.

Strategies, all from one run: the default sampler (plans the trials it hands out around those in
flight), the same sampler as it was before (`in_flight="believer"`: its GP takes running trials
at their predicted value), and Optuna's TPE with the FAQ recipe and `constant_liar` (Optuna's
recipe for parallel TPE; `sampler: tpe` sets it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from search_benchmark import make_job, trials_to_reach

from ablate.config import JobSpec

#: name -> (design overrides, MixtureSampler keyword arguments or None for `make_sampler`)
STRATEGIES: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "default (batch-aware)": ({"sampler": "default"}, None),
    "default before (kriging believer)": ({"sampler": "default"}, {"in_flight": "believer"}),
    "TPE, FAQ -log(u), constant_liar": ({"sampler": "tpe", "parameterization": "logu"}, None),
}


def sampler_for(job: JobSpec, options: dict[str, Any] | None) -> Any:
    """The driver's sampler (`make_sampler`), or the default one built with `options`."""
    from ablate.search import make_sampler
    from ablate.search.mixture_sampler import MixtureSampler

    if options is None:
        return make_sampler(job, 0)
    return MixtureSampler(job, seed=int(job.seed) * 1_000_003, **options)


def one_run(args: tuple[str, str, int, int, float, int, int]) -> tuple[str, int, str, int]:
    name, land, seed, k, noise, n_types, budget = args
    design, options = STRATEGIES[name]
    types = [f"t{i}" for i in range(n_types)]
    job = make_job(design, land, seed, noise, types)
    return (
        name,
        k,
        land,
        trials_to_reach(job, types, budget, sampler=sampler_for(job, options), k=k),
    )


def table(
    results: list[tuple[str, int, str, int]], ks: list[int], budget: int, names: list[str]
) -> list[str]:
    """Markdown rows: per strategy, the median (and runs reached) for each k."""

    def cell(name: str, k: int) -> list[int]:
        return [h for s, kk, _, h in results if s == name and kk == k]

    head = " | ".join(f"k = {k}: median (reached)" for k in ks)
    lines = [
        f"| strategy | {head} | k = 8 / k = 1 | k = 32 / k = 1 |",
        "|---" * (len(ks) + 3) + "|",
    ]
    for name in names:
        med = {k: statistics.median(cell(name, k)) for k in ks if cell(name, k)}
        parts = [
            f"{med[k]:g} ({sum(h <= budget for h in cell(name, k))}/{len(cell(name, k))})"
            if k in med
            else "-"
            for k in ks
        ]
        ratio = [f"{med[k] / med[1]:.2f}" if k in med and 1 in med else "-" for k in (8, 32)]
        lines.append(f"| {name} | {' | '.join(parts)} | {' | '.join(ratio)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=48)
    ap.add_argument("--noise", type=float, default=0.005)
    ap.add_argument("--types", type=int, default=5)
    ap.add_argument("--in-flight", default="1,8,32", help="comma-separated k")
    ap.add_argument("--only", default="", help="run only strategies whose name contains this")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = ap.parse_args()
    from ablate.objectives import LANDSCAPES

    ks = [int(x) for x in args.in_flight.split(",")]
    names = [n for n in STRATEGIES if args.only in n]
    work = [
        (name, land, seed, k, args.noise, args.types, args.budget)
        for name in names
        for k in ks
        for land in LANDSCAPES
        for seed in range(args.seeds)
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(one_run, work))
    lands = list(LANDSCAPES)
    print(f"| strategy | k | {' | '.join(lands)} |\n" + "|---" * (len(lands) + 2) + "|")
    for name in names:
        for k in ks:
            per = [
                statistics.median(h for s, kk, la, h in results if (s, kk, la) == (name, k, land))
                for land in lands
            ]
            print(f"| {name} | {k} | {' | '.join(f'{m:g}' for m in per)} |")
    print(f"\n{len(work)} runs in {time.perf_counter() - start:.0f} s ({args.jobs} processes)\n")
    print("\n".join(table(results, ks, args.budget, names)))
    sequential = [h for s, k, _, h in results if s == names[0] and k == 1]
    if not sequential:  # the lag reference needs the k = 1 runs
        return
    first = statistics.median(sequential)
    print(
        f"\nlag alone, from {names[0]}'s k = 1 median {first:g}: trial n is proposed knowing "
        f"n - k results, so as informed as a sequential proposal, hit at "
        + ", ".join(f"k = {k}: {first + k - 1:g}" for k in ks)
    )


if __name__ == "__main__":
    main()
