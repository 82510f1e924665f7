"""GPU-slot utilisation of 0.25-GPU trials: four share one fake GPU (issue 15).

    python benchmarks/fractional_utilisation_benchmark.py [--gpus 1] [--trials 40] [--duration 3] [--repeat 3]

Measured as `utilisation_benchmark.py` measures whole-GPU trials: a `ray.cluster_utils.Cluster`
(head without GPUs, one worker node with G fake GPUs and 4 G CPUs) runs a sim design through
`ablate.sweep.run_sweep`, here with `models: [{name: proxy, size: 0.5e9, gpus_per_trial: 0.25}]`
(the per-model lane path), so there are 4 G slots. Utilisation = sum of the trials' own
durations / (slots x the time from the first trial's start to the last one's end, as Optuna
records them). Baseline in the same run: plain Ray tasks with `num_gpus=0.25` that sleep the same
time, all submitted at once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from utilisation_benchmark import empty_head, ray_utilisation

from ablate.config import JobSpec, build

TYPES = ["a", "b", "c", "d", "e"]


def make_job(root: Path, trials: int, duration: float, slots: int) -> JobSpec:
    data = {
        "study": "fractional-utilisation",
        "storage": f"sqlite:///{root}/optuna.db",
        "tracking": f"sqlite:///{root}/mlflow.db",
        "task_types": TYPES,
        "models": [{"name": "proxy", "path": "p", "size": 0.5e9, "gpus_per_trial": 0.25}],
        "objective": {"kind": "sim", "metric": "score", "duration_s": duration},
        "design": {"kind": "random", "n_trials": trials, "volumes": [5000], "seeds": [0]},
        "resources": {"cpus_per_trial": 1, "max_in_flight": slots},
    }
    return build(JobSpec, data, "fractional_utilisation_benchmark")


def sweep_utilisation(job: JobSpec, slots: int) -> tuple[float, int]:
    """(utilisation, the most trials that ran at once)."""
    from ablate.study import open_study
    from ablate.sweep import run_sweep

    run_sweep(job, TYPES, progress=None)
    trials = open_study(job, create=False).get_trials()
    busy = sum(float(t.user_attrs["seconds"]) for t in trials)
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in trials)
    events = sorted(
        [(t.datetime_start, 1) for t in trials] + [(t.datetime_complete, -1) for t in trials]
    )
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return busy / (slots * (last - first).total_seconds()), most


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--gpus", type=int, default=1)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    slots = 4 * args.gpus
    cluster = empty_head()
    sweeps, plain, most = [], [], 0
    try:
        cluster.add_node(num_cpus=slots, num_gpus=args.gpus, object_store_memory=80 * 1024**2)
        ray.init(address=cluster.address, log_to_driver=False)
        for rep in range(args.repeat):
            root = Path(tempfile.mkdtemp(prefix="ablate-frac-"))
            u, at_once = sweep_utilisation(make_job(root, args.trials, args.duration, slots), slots)
            b = ray_utilisation(args.trials, args.duration, slots, gpus=0.25)
            sweeps.append(u)
            plain.append(b)
            most = max(most, at_once)
            print(
                f"run {rep}: sweep {u:.3f} ({at_once} at once), plain Ray tasks {b:.3f}", flush=True
            )
    finally:
        ray.shutdown()
        cluster.shutdown()
    u, b = statistics.median(sweeps), statistics.median(plain)
    print()
    print(
        "| slots | trials x seconds | most at once | sweep utilisation (median) | plain Ray tasks | sweep / Ray | target |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {slots} ({args.gpus} fake GPU(s) x 4 at 0.25) | {args.trials} x {args.duration:g} | {most} | "
        f"{u:.1%} | {b:.1%} | {u / b:.3f} | >= 95% |"
    )


if __name__ == "__main__":
    main()
