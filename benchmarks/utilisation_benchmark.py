"""GPU-slot utilisation of a sweep on a local multi-node Ray cluster with fake GPUs.

    python benchmarks/utilisation_benchmark.py [--nodes 2] [--gpus 2] [--trials 40] [--duration 3] [--repeat 3]

A `ray.cluster_utils.Cluster` with N worker nodes of G fake GPUs each (the head node has none)
runs a fixed sim design (`duration_s` per trial, one GPU each, max_in_flight = all slots)
through `ablate.sweep.run_sweep`. Utilisation = sum of the trials' own durations / (slots x
the time from the first trial's start to the last one's end, both as Optuna records them).
Baseline in the same run, on the same cluster: plain Ray tasks that just sleep the same time
(`num_gpus=1`, all submitted at once): what Ray itself reaches.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ablate.config import JobSpec, build


def make_job(root: Path, trials: int, duration: float, slots: int) -> JobSpec:
    data = {
        "study": "utilisation",
        "storage": f"sqlite:///{root}/optuna.db",
        "tracking": f"sqlite:///{root}/mlflow.db",
        "task_types": ["a", "b", "c", "d", "e"],
        "objective": {"kind": "sim", "metric": "score", "duration_s": duration},
        "design": {"kind": "random", "n_trials": trials, "volumes": [5000], "seeds": [0]},
        "resources": {"gpus_per_trial": 1, "cpus_per_trial": 1, "max_in_flight": slots},
    }
    return build(JobSpec, data, "utilisation_benchmark")


def sweep_utilisation(job: JobSpec, slots: int) -> float:
    from ablate.study import open_study
    from ablate.sweep import run_sweep

    run_sweep(job, ["a", "b", "c", "d", "e"], progress=None)
    trials = open_study(job, create=False).get_trials()
    busy = sum(float(t.user_attrs["seconds"]) for t in trials)
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in trials)
    return busy / (slots * (last - first).total_seconds())


def ray_utilisation(trials: int, duration: float, slots: int, gpus: float = 1.0) -> float:
    """Plain Ray tasks of `gpus` GPUs each, sleeping `duration`: the baseline's utilisation."""
    import ray

    @ray.remote(num_gpus=gpus, num_cpus=1)
    def sleep(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    start = time.perf_counter()
    busy = sum(ray.get([sleep.remote(duration) for _ in range(trials)]))
    return busy / (slots * (time.perf_counter() - start))


def empty_head() -> Any:
    """A local Ray cluster whose head offers nothing: trials run on the nodes added to it."""
    from ray.cluster_utils import Cluster

    return Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "num_gpus": 0,
            "object_store_memory": 80 * 1024**2,
            "include_dashboard": False,
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    slots = args.nodes * args.gpus
    cluster = empty_head()
    sweeps, plain = [], []
    try:
        for _ in range(args.nodes):
            cluster.add_node(
                num_cpus=args.gpus, num_gpus=args.gpus, object_store_memory=80 * 1024**2
            )
        ray.init(address=cluster.address, log_to_driver=False)
        for rep in range(args.repeat):
            root = Path(tempfile.mkdtemp(prefix="ablate-util-"))
            u = sweep_utilisation(make_job(root, args.trials, args.duration, slots), slots)
            b = ray_utilisation(args.trials, args.duration, slots)
            sweeps.append(u)
            plain.append(b)
            print(f"run {rep}: sweep {u:.3f}, plain Ray tasks {b:.3f}", flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
    u, b = statistics.median(sweeps), statistics.median(plain)
    print()
    print(
        "| slots | trials x seconds | sweep utilisation (median) | plain Ray tasks | sweep / Ray | target |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {slots} ({args.nodes} nodes x {args.gpus} fake GPUs) | {args.trials} x {args.duration:g} | {u:.1%} | {b:.1%} | {u / b:.3f} | >= 95% |"
    )


if __name__ == "__main__":
    main()
