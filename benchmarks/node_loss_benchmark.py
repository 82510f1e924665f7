"""A node lost under running trials with no spare capacity: the sweep's longest period without
progress, its trial count and wall time, against the same sweep without a loss (issue 16).

    python benchmarks/node_loss_benchmark.py [--trials 16] [--duration 4]

A local Ray cluster (`ray.cluster_utils.Cluster`: a head with no CPUs, two nodes of 2 CPUs and
2 fake GPUs each) runs a `sim` sweep of `--trials` trials of `--duration` s each, one GPU per
trial and 4 in flight: every GPU is busy. In the loss run, the second node is removed as soon as
4 trials run. The driver's progress lines are timestamped as they arrive; the figure is the
longest gap between two of them after the loss. Target: at most one trial's duration + 10 s,
and every trial COMPLETE.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

TYPES = ["caption", "count", "compare"]


def write_job(folder: Path, trials: int, duration: float) -> Path:
    seeds = list(range(max(1, trials // 4)))
    job = {
        "study": "node-loss",
        "storage": "sqlite:///optuna.db",
        "tracking": "sqlite:///mlflow.db",
        "task_types": TYPES,
        "objective": {
            "kind": "sim",
            "landscape": "less_is_more",
            "metric": "score",
            "duration_s": duration,
        },
        "design": {"kind": "grid", "volumes": [1000, 5000], "balance": [0.5, 1.0], "seeds": seeds},
        "resources": {"gpus_per_trial": 1, "cpus_per_trial": 1, "max_in_flight": 4},
    }
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def running(folder: Path) -> int:
    import sqlite3

    db = folder / "optuna.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(
                conn.execute("SELECT count(*) FROM trials WHERE state='RUNNING'").fetchone()[0]
            )
    except sqlite3.Error:
        return 0


def complete(folder: Path) -> int:
    import sqlite3

    with sqlite3.connect(folder / "optuna.db") as conn:
        return int(conn.execute("SELECT count(*) FROM trials WHERE state='COMPLETE'").fetchone()[0])


def one_run(folder: Path, trials: int, duration: float, lose: bool) -> dict[str, float]:
    from ray.cluster_utils import Cluster

    folder.mkdir(parents=True)
    job = write_job(folder, trials, duration)
    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 0, "include_dashboard": False,
                                      "object_store_memory": 80 * 1024**2})  # fmt: skip
    try:
        nodes = [cluster.add_node(num_cpus=2, num_gpus=2, object_store_memory=80 * 1024**2)
                 for _ in range(2)]  # fmt: skip
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        env.pop("RAY_ADDRESS", None)
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ablate.cli", "sweep", str(job), "--address", cluster.address],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        stamps: list[float] = []
        lost_at = None
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        while proc.poll() is None:
            line = proc.stdout.readline()
            if line:
                stamps.append(time.perf_counter())
                continue
            if lose and lost_at is None and running(folder) >= 4:
                cluster.remove_node(nodes[1])
                lost_at = time.perf_counter()
            time.sleep(0.05)
        wall = time.perf_counter() - start
        after = [t for t in stamps if lost_at is None or t >= lost_at]
        points = ([lost_at] if lost_at else []) + after
        gaps = [b - a for a, b in itertools.pairwise(points)]
        return {"rc": proc.returncode, "wall": wall, "complete": complete(folder),
                "max_gap": max(gaps) if gaps else 0.0}  # fmt: skip
    finally:
        cluster.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--duration", type=float, default=4.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = one_run(Path(tmp) / "no-loss", args.trials, args.duration, lose=False)
        loss = one_run(Path(tmp) / "loss", args.trials, args.duration, lose=True)
    for name, r in (("no loss (baseline)", base), ("node lost, no spare capacity", loss)):
        print(f"{name:30s} exit {r['rc']}, {r['complete']}/{args.trials} complete, wall "
              f"{r['wall']:.1f} s, longest gap between progress lines {r['max_gap']:.1f} s")  # fmt: skip
    target = args.duration + 10
    print(f"target: gap <= {target:.0f} s (one trial + 10 s): "
          f"{'met' if loss['max_gap'] <= target and loss['complete'] == args.trials else 'MISSED'}; "
          f"wall with the loss {loss['wall'] / base['wall']:.2f}x the baseline's")  # fmt: skip


if __name__ == "__main__":
    main()
