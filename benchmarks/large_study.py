"""A large ablate study shaped as a grid sweep writes it, with synthetic `less_is_more` scores.

    python benchmarks/large_study.py FOLDER N STORAGE_URL   (N in 100, 1000, 5000)

add_trials writes about 5 trials a second to SQLite on the 2-core machine: build a 5,000-trial
study on /dev/shm and copy the file (or copy SQLite tables into PostgreSQL with COPY).

Trials: the job's grid design (volumes x balance levels x seeds, 6 task types) through
ablate.design and ablate.study.codec.trial_attrs (the attributes a sweep enqueues), finished with
the result attributes a trial writes (metrics: score + 8 domains + losses, seconds, counts,
selection_hash); 1% FAIL with an error. Written through ablate's study layer (open_study).
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from report_benchmark import DOMAINS  # the MMCR-like domain names the report bench uses

TYPES = ["captioning", "counting", "comparison", "reasoning", "ocr", "spatial"]
SHAPES = {  # n -> (volumes, balance levels, seeds)
    100: ([1000, 5000, 20000, 50000, 100000], 5, 4),
    1000: ([1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000], 25, 5),
    5000: ([1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000], 125, 5),
}


def main(folder: Path, n: int, storage: str) -> None:
    import optuna

    from ablate.design import fixed_design
    from ablate.objectives import sim_score
    from ablate.plan import load_job
    from ablate.study import open_study
    from ablate.study.codec import trial_attrs

    vols, nb, ns = SHAPES[n]
    folder.mkdir(parents=True, exist_ok=True)
    job_file = folder / "job.yaml"
    job_file.write_text(
        yaml.safe_dump(
            {
                "study": f"scale{n}",
                "storage": storage,
                "tracking": "sqlite:///mlflow.db",
                "task_types": TYPES,
                "objective": {
                    "kind": "sim",
                    "landscape": "less_is_more",
                    "noise": 0.01,
                    "metric": "score",
                },
                "design": {
                    "kind": "grid",
                    "volumes": vols,
                    "balance": [round(float(b), 4) for b in np.linspace(0.2, 1.0, nb)],
                    "seeds": list(range(ns)),
                },
                "resources": {"gpus_per_trial": 1},
            },
            sort_keys=False,
        )
    )
    job = load_job(job_file)
    points = fixed_design(job, TYPES)
    assert len(points) == n, len(points)
    study = open_study(job, create=True)
    rng = np.random.default_rng(0)
    trials = []
    for i, m in enumerate(points):
        attrs = trial_attrs(m)
        value, _ = sim_score(
            "less_is_more", dict(m.proportions), TYPES, m.volume, m.seed, 0, noise=0.01
        )
        if i % 100 == 37:  # 1% failed trials
            attrs["error"] = "RuntimeError: CUDA out of memory (synthetic)\n  at step 12"
            trials.append(
                optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=attrs)
            )
            continue
        counts = {t: round(p * m.volume) for t, p in m.proportions.items()}
        attrs.update(
            metrics={
                "score": value,
                **{f"accuracy/{d}": value + float(rng.normal(0, 0.02)) for d in DOMAINS},
                "train_loss": 2.0 - value,
                "bench_loss": 2.1 - value,
                "tokens_per_s": 9000.0,
            },
            seconds=600.0 * m.volume / 5000,
            counts=counts,
            selection_hash=hashlib.sha256(f"{i}".encode()).hexdigest()[:16],
        )
        trials.append(optuna.trial.create_trial(value=value, user_attrs=attrs))
    t0 = time.perf_counter()
    study.add_trials(trials)
    from ablate import tracking

    parent = tracking.start_sweep(job)
    tracking.finish_sweep(job, parent, {"n_complete": n})
    print(f"{n} trials written to {storage} in {time.perf_counter() - t0:.1f} s: {job_file}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
