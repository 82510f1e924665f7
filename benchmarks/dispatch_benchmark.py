"""Dispatch overhead of the sweep driver: zero-second sim trials, whole driver, per storage.

    python benchmarks/dispatch_benchmark.py [--trials 400] [--repeat 3] [--in-flight 2]

For each storage (SQLite file, journal file) it runs `ablate.sweep.run_sweep` on a fixed
`random` design of N mixtures whose objective is `sim` with `duration_s: 0`: every trial is
enqueued in Optuna, asked, sent to a Ray actor, told, and logged to MLflow (SQLite) by the
driver's `tracking.RunWriter` thread; `run_sweep` returns only once that writer has drained, so
the whole-run figure includes every child run. Ray is started once before (its start-up is not
dispatch); the actors' start is included (the first repeat's actors take Ray's prestarted
workers, later repeats start fresh worker processes). Baseline in the same run: the same
enqueue -> ask -> tell loop on the same storage with nothing else (Optuna's own floor).
Prints trials/s (medians over --repeat runs) and the driver/Optuna ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from ablate.config import JobSpec, build


def make_job(root: Path, storage: str, n: int, in_flight: int, study: str) -> JobSpec:
    data = {
        "study": study,
        "storage": storage,
        "tracking": f"sqlite:///{root}/mlflow.db",
        "task_types": ["a", "b", "c", "d", "e"],
        "objective": {"kind": "sim", "metric": "score", "duration_s": 0.0},
        "design": {"kind": "random", "n_trials": n, "volumes": [5000], "seeds": [0]},
        "resources": {"gpus_per_trial": 0, "cpus_per_trial": 1, "max_in_flight": in_flight},
    }
    return build(JobSpec, data, "dispatch_benchmark")


def optuna_floor(job: JobSpec, types: list[str]) -> float:
    """trials/s of enqueue + ask + set attrs + tell alone on the job's storage."""
    from ablate.plan import design_mixtures
    from ablate.study import enqueue_design, open_study

    study = open_study(job)
    mixtures = design_mixtures(job, types)
    start = time.perf_counter()
    enqueue_design(study, mixtures)
    for _ in mixtures:
        t = study.ask()
        t.set_user_attr("metrics", {"score": 0.5})
        t.set_user_attr("seconds", 0.0)
        study.tell(t, 0.5)
    return len(mixtures) / (time.perf_counter() - start)


def driver_rate(job: JobSpec, types: list[str]) -> tuple[float, float]:
    """(trials/s over the whole run_sweep call, trials/s from the 10th finished trial to the last)."""
    from ablate import tracking
    from ablate.sweep import run_sweep

    tracking.start_sweep(
        job
    )  # the MLflow DB's one-time creation (~6 s of migrations) is not dispatch
    stamps: list[float] = []
    start = time.perf_counter()
    summary = run_sweep(job, types, progress=lambda p: stamps.append(time.perf_counter()))
    seconds = time.perf_counter() - start
    assert summary.n_run == job.design.n_trials, summary
    steady = (len(stamps) - 10) / (stamps[-1] - stamps[9])
    return summary.n_run / seconds, steady


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--in-flight", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(
        num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False, log_to_driver=False
    )
    types = ["a", "b", "c", "d", "e"]
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for rep in range(args.repeat):
            for kind in ("sqlite", "journal"):
                root = Path(tempfile.mkdtemp(prefix="ablate-dispatch-"))
                storage = (
                    f"sqlite:///{root}/optuna.db"
                    if kind == "sqlite"
                    else str(root / "optuna.journal")
                )
                floor = optuna_floor(
                    make_job(root, storage, args.trials, args.in_flight, "floor"), types
                )
                rate, steady = driver_rate(
                    make_job(root, storage, args.trials, args.in_flight, "driver"), types
                )
                r = results.setdefault(kind, {"driver": [], "steady": [], "floor": []})
                r["driver"].append(rate)
                r["steady"].append(steady)
                r["floor"].append(floor)
                print(
                    f"run {rep} {kind}: driver {rate:.1f} trials/s overall, {steady:.1f} steady; "
                    f"Optuna alone {floor:.1f} trials/s",
                    flush=True,
                )
    finally:
        ray.shutdown()
    print()
    print(
        "| storage | driver trials/s, whole run_sweep | steady (10th to last trial) | "
        "plain Optuna enqueue/ask/tell trials/s | steady / Optuna | target |"
    )
    print("|---|---|---|---|---|---|")
    for kind, target in (("sqlite", 50), ("journal", 100)):
        d = statistics.median(results[kind]["driver"])
        st = statistics.median(results[kind]["steady"])
        f = statistics.median(results[kind]["floor"])
        print(f"| {kind} | {d:.1f} | {st:.1f} | {f:.1f} | {st / f:.2f} | >= {target} |")


if __name__ == "__main__":
    main()
