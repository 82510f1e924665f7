"""Held-out Spearman of the surrogates on the built-in landscapes (ablate.objectives sim landscapes), 60 trials each.

    python benchmarks/surrogate_benchmark.py [--trials 60] [--seeds 0 1 2] [--demo DEMO/job.yaml]

Each study: `trials` mixtures at Dirichlet(1) proportions over 4 task types and log-uniform
volumes 500..50,000 rows, one seed each, scored by `ablate.objectives.sim_score` with seed noise 0.01
(the landscapes peak at 1.0). Grouped 5-fold cross-validation of every surrogate; the baseline
in the same run is a model that knows only the volume (ridge on z, z^2): it shows how much of
the ranking the proportions add. Target: the best surrogate >= 0.8 on every landscape.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

import numpy as np


def sim_study(landscape: str, n: int, seed: int, storage: str) -> object:
    import optuna

    from ablate.analysis.load import result_trial
    from ablate.objectives import sim_score

    types = ["a", "b", "c", "d"]
    rng = np.random.default_rng([seed, n])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"{landscape}-{seed}", storage=storage, direction="maximize"
    )
    trials = []
    for i in range(n):
        props = dict(zip(types, rng.dirichlet(np.ones(4)).tolist(), strict=True))
        volume = round(math.exp(rng.uniform(math.log(500), math.log(50_000))))
        value, clean = sim_score(landscape, props, types, volume, 0, seed, noise=0.01)
        metrics = {"score": value, "noise_free": clean}
        trials.append(result_trial(props, volume, 0, f"m{i}", value, metrics, 1.0))
    study.add_trials(trials)
    return study


def volume_only_spearman(df: object) -> float:
    """Baseline: the same grouped CV with a model of the volume alone (registered for the call)."""
    from ablate.analysis.surrogates import SURROGATES, LogLinear, cross_validate, study_data

    class VolumeOnly(LogLinear):
        @staticmethod
        def _features(p: np.ndarray, z: np.ndarray) -> np.ndarray:
            return np.column_stack([z, z * z])

    SURROGATES.register("volume_only")(VolumeOnly)
    try:
        return cross_validate(study_data(df), "volume_only").spearman
    finally:
        SURROGATES.unregister("volume_only")


def main() -> None:
    from ablate.analysis import load
    from ablate.analysis.surrogates import best_by, fit_surrogates
    from ablate.objectives import LANDSCAPES

    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--demo", type=Path, default=None, help="a demo job.yaml to report too")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ablate-surrogate-bench-"))
    storage = f"sqlite:///{tmp}/optuna.db"
    print(
        f"{'landscape':13s} {'loglinear':>10s} {'mixing_law':>10s} {'gp':>10s} {'ensemble':>10s} {'best':>10s} {'vol only':>10s}  (median over landscape seeds {args.seeds})"
    )
    for name in LANDSCAPES:
        cols: dict[str, list[float]] = {
            "loglinear": [],
            "mixing_law": [],
            "gp": [],
            "ensemble": [],
            "best": [],
            "vol": [],
        }
        for seed in args.seeds:
            df = load(sim_study(name, args.trials, seed, storage))
            sur = fit_surrogates(df)
            for m, cv in sur.cv.items():
                cols[m].append(cv.spearman)
            cols["best"].append(sur.cv[best_by(sur.cv, "spearman")].spearman)
            cols["vol"].append(volume_only_spearman(df))
        med = {k: statistics.median(v) for k, v in cols.items()}
        print(
            f"{name:13s} {med['loglinear']:10.3f} {med['mixing_law']:10.3f} {med['gp']:10.3f} "
            f"{med['ensemble']:10.3f} {med['best']:10.3f} {med['vol']:10.3f}   best per seed: "
            + ", ".join(f"{x:.3f}" for x in cols["best"])
        )
    if args.demo:
        df = load(args.demo)
        sur = fit_surrogates(df)
        print(
            f"demo study ({args.demo}, {len(df)} trials): "
            + ", ".join(f"{m} {cv.spearman:.3f}" for m, cv in sur.cv.items())
            + f"; volume only {volume_only_spearman(df):.3f}"
        )


if __name__ == "__main__":
    main()
