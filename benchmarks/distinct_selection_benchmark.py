"""Repeated selections in a search at small volumes: the default sampler with and without
`ablate.search.distinct` (the baseline: `MixtureSampler(distinct=False)`), in the same run.

    python benchmarks/distinct_selection_benchmark.py [--seeds 3] [--budget 40] [--volumes 50,500]

A trial trains on its rows per type (`rows_per_type` of its shares at its volume): two mixtures
with the same rows train on the same data. Each search runs the driver's ask -> suggest -> tell
loop on the sim landscapes (5 task types, one volume, no noise), scored, as a trial would be, at
the shares its rows give (rows / volume), so a repeated selection scores exactly what it scored
before. Per volume: trials that repeat an earlier selection (of all trials), and the median best
noise-free score after the budget (the landscapes' optimum is 1 at their peak volume).
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from search_benchmark import make_job


def one_search(job: Any, types: list[str], budget: int, distinct: bool) -> tuple[int, float]:
    """(repeated selections, best noise-free score) of one search of `budget` trials."""
    import optuna

    from ablate.mixture import rows_per_type
    from ablate.objectives import sim_score
    from ablate.plan import design_mixtures
    from ablate.search import cube_params, suggest
    from ablate.search.mixture_sampler import MixtureSampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = MixtureSampler(job, 0, distinct=distinct)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for mix in design_mixtures(job, types):
        study.enqueue_trial(cube_params(job, types, mix))
    obj, seen, repeats, best = job.objective, set[tuple[int, ...]](), 0, 0.0
    for _ in range(budget):
        trial = study.ask()
        mix = suggest(trial, job, types)
        rows = rows_per_type(mix.proportions, mix.volume)
        repeats += tuple(rows.values()) in seen
        seen.add(tuple(rows.values()))
        shares = {t: n / mix.volume for t, n in rows.items()}
        value, clean = sim_score(
            obj.landscape, shares, types, mix.volume, mix.seed, obj.landscape_seed, 0.0
        )
        best = max(best, clean)
        study.tell(trial, value)
    return repeats, best


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--volumes", default="50,500")
    args = ap.parse_args()
    from ablate.objectives import LANDSCAPES

    types = [f"t{i}" for i in range(5)]
    print(f"{'volume':>6}  {'sampler':<36} {'repeated trials':>16}  {'median best':>11}")
    for volume in (int(v) for v in args.volumes.split(",")):
        for distinct in (False, True):
            repeats, bests = 0, []
            for landscape in LANDSCAPES:
                for seed in range(args.seeds):
                    design = {"volumes": [volume], "n_trials": args.budget}
                    job = make_job(design, landscape, seed, 0.0, types)
                    r, b = one_search(job, types, args.budget, distinct)
                    repeats, bests = repeats + r, [*bests, b]
            name = "default" if distinct else "default, repeats allowed (baseline)"
            total = len(bests) * args.budget
            print(
                f"{volume:>6}  {name:<36} {repeats:>6} of {total:<6} "
                f"{statistics.median(bests):>11.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
