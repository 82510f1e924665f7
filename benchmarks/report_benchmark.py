"""Time `ablate report` on a 500-trial study; baseline in the same run: loading the study only.

    python benchmarks/report_benchmark.py [--trials 500] [--repeats 3]

The study (SQLite, in a temp folder): a grid of 5 volumes x 5 balance levels x 4 seeds over 4
task types (100 trials) plus 400 searched trials at Dirichlet proportions and log-uniform
volumes, scored by the `less_is_more` landscape of ablate.objectives with seed noise 0.01, each with
8 per-domain metrics; the sweep's parent MLflow run in a SQLite tracking store.

Headline: the command a user runs, `ablate report JOB.yaml --out DIR` in a fresh process
(imports included, MLflow logging on: the files land in the sweep's parent run), against the
baseline of `load` alone in a fresh process, alternated in the same run; the load average is
printed before and after (the machine is shared). Target: report <= 10 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

TYPES = ["colors", "layout", "compare", "lists"]
DOMAINS = [
    "arts",
    "education",
    "humanities",
    "lifestyle",
    "natural",
    "science",
    "sports",
    "technology",
]


def build(folder: Path, n: int) -> Path:
    import optuna

    from ablate import tracking
    from ablate.analysis.load import result_trial
    from ablate.design import proportions_for_balance
    from ablate.objectives import sim_score
    from ablate.plan import load_job

    job_file = folder / "job.yaml"
    job_file.write_text(
        yaml.safe_dump(
            {
                "study": "bench",
                "storage": "sqlite:///optuna.db",
                "tracking": "sqlite:///mlflow.db",
                "task_types": TYPES,
                "objective": {"kind": "python", "target": "x:y", "metric": "score"},
                "resources": {"gpus_per_trial": 1},
            }
        )
    )
    job = load_job(job_file)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="bench", storage=job.storage_url, direction="maximize")
    rng = np.random.default_rng(0)
    points = [
        (proportions_for_balance(TYPES, b), v, s)
        for v in (500, 1500, 5000, 15000, 50000)
        for b in (0.2, 0.4, 0.6, 0.8, 1.0)
        for s in range(4)
    ]
    while len(points) < n:
        props = dict(zip(TYPES, rng.dirichlet(np.ones(4)).tolist(), strict=True))
        points.append((props, round(math.exp(rng.uniform(math.log(500), math.log(50_000)))), 0))
    trials = []
    for i, (props, v, s) in enumerate(points[:n]):
        value, _ = sim_score("less_is_more", props, TYPES, v, s, 0, noise=0.01)
        metrics = {
            "score": value,
            **{f"accuracy/{d}": value + rng.normal(0, 0.02) for d in DOMAINS},
        }
        trials.append(result_trial(props, v, s, f"m{i}-s{s}", value, metrics, 600.0 * v / 5000))
    study.add_trials(trials)
    parent = tracking.start_sweep(job)
    tracking.finish_sweep(job, parent, {"n_complete": n})
    return job_file


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ablate-report-bench-"))
    job = build(folder, args.trials)
    load_cmd = [sys.executable, "-c", f"from ablate.analysis import load; load({str(job)!r})"]
    report_cmd = [
        sys.executable,
        "-m",
        "ablate.cli",
        "report",
        str(job),
        "--out",
        str(folder / "report"),
    ]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    loads, reports = [], []
    for _ in range(args.repeats):  # alternate the two sides
        loads.append(timed(load_cmd))
        reports.append(timed(report_cmd))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    logged = sorted(p.name for p in (folder / "mlartifacts").rglob("report/*"))
    print(f"study: {args.trials} trials in {folder}; logged to the MLflow run: {', '.join(logged)}")
    base, head = statistics.median(loads), statistics.median(reports)
    print(
        f"baseline, load only (fresh process):           median {base:.2f} s  "
        f"{[round(x, 2) for x in loads]}"
    )
    print(
        f"ablate report, MLflow on (fresh process):      median {head:.2f} s  "
        f"{[round(x, 2) for x in reports]}  ({head / base:.1f}x the load; target <= 10 s: "
        f"{'met' if head <= 10 else 'not met'})"
    )
    from ablate.analysis.report import write_report

    start = time.perf_counter()
    rep = write_report(job, folder / "report-inproc", log_to_mlflow=False, parallel=False)
    print(
        f"write_report in a warm process, serial, no MLflow: {time.perf_counter() - start:.2f} s; "
        f"verdict: {rep.findings.verdict}; surrogate CV (s): "
        + ", ".join(f"{c.name} {c.seconds:.2f}" for c in rep.surrogates.cv.values())  # type: ignore[union-attr]
    )


if __name__ == "__main__":
    main()
