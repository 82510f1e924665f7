"""Issue 2's targets for `ablate demo` on this machine, measured in one run.

    python benchmarks/demo_benchmark.py [--out DIR]

Runs the installed `ablate demo --out DIR` as a user would (fresh, empty DIR), then reads the
study back and reports:
- wall time and number of completed trials (target: >= 12 trials in <= 300 s on 2 cores);
- the baseline in the same run: the sum of the trials' own durations, i.e. the time the same
  trials take one after another in one process; their ratio to the wall time is the speed-up
  Ray's parallel workers gave, and what is left is start-up (world, import, Ray, model loads);
- the mixture effect: gap between the best and worst mixture means / the largest seed range of
  one mixture (target: > 3).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="demo folder (default: a fresh temporary one)"
    )
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="ablate-demo-bench-"))
    if out.exists():
        shutil.rmtree(out)
    ablate = shutil.which("ablate")
    if ablate is None:
        sys.exit("`ablate` is not on PATH: pip install -e . first")

    start = time.perf_counter()
    subprocess.run([ablate, "demo", "--out", str(out)], check=True)
    wall = time.perf_counter() - start

    from ablate.analysis import load, mixture_effect

    df = load(out / "job.yaml")
    done = df[df["state"] == "COMPLETE"]
    serial = float(done["seconds"].sum())
    effect = mixture_effect(df)
    print("\n=== ablate demo benchmark ===")
    print(f"trials complete          {len(done)} (target >= 12)")
    print(f"wall time                {wall:.1f} s (target <= 300 s)")
    print(f"sum of trial durations   {serial:.1f} s (baseline: the same trials one after another)")
    print(
        f"speed-up over serial     {serial / wall:.2f} x (wall includes world, import, Ray and model start-up)"
    )
    print(
        f"mixture gap / seed range {effect.ratio:.1f} (target > 3): {effect.describe('overall_accuracy')}"
    )


if __name__ == "__main__":
    main()
