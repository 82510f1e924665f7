"""Start-up of the `ablate` command against a bare Python interpreter, in the same run.

    python benchmarks/startup_benchmark.py [--repeats 5]

`ablate --help` and `ablate sweep --help` must not import torch, Ray, MLflow, Optuna or
transformers (tests/cli/test_cli.py checks which modules load); this measures what that buys:
the median wall time of each command over `--repeats` runs, and its ratio to `python -c pass`
(the interpreter's own start-up, the floor any command pays). Figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def median_seconds(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ablate = str(Path(sys.executable).parent / "ablate")
    cases = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "ablate --help": [ablate, "--help"],
        "ablate sweep --help": [ablate, "sweep", "--help"],
        "python -c 'import optuna' (for scale)": [sys.executable, "-c", "import optuna"],
    }
    base = None
    for name, cmd in cases.items():
        seconds = median_seconds(cmd, args.repeats)
        base = base or seconds
        print(f"{name:40s} {seconds:6.3f} s   {seconds / base:5.1f}x the baseline")


if __name__ == "__main__":
    main()
