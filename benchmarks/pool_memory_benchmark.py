"""A trial's memory does not grow with the pool's size: pools are memory-mapped (issue 3).

    python benchmarks/pool_memory_benchmark.py [--sizes 31000 310000] [--volume 5000]

For each pool size, a fresh subprocess does what a trial does with the pool: `open_pool`,
`materialize` a `volume`-row mixture, then read the selected rows' `id`, `conversations` and
`images`, once with `Pool.take` and once with `pool.table().select(...).take(...)` (what
`ablate.trial` did; Arrow concatenates every chunk of a column before a take). It reports
the growth of its private memory (RssAnon: heap, numpy, Arrow buffers) and of its resident
file pages (RssFile: pages of the memory-mapped pool it touched) over the import baseline.
Baseline in the same run: the smallest pool. Target: the private growth at 10x the rows stays
flat (beyond the 4-byte-per-row label codes, 1.2 MB at 310k rows). Resident file pages are
page cache shared by every process mapping the pool and reclaimed under memory pressure; with
rows spread over the whole file and the kernel's 64 KiB fault-around they approach its size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pool_data import write_pool

CHILD = r"""
import json, sys
def mem():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024
    return out
from ablate.mixture import Mixture, materialize
from ablate.pool import open_pool
import numpy, pyarrow, pyarrow.compute  # imported before the baseline
before = mem()
pool = open_pool(sys.argv[1])
sel = materialize(Mixture(volume=int(sys.argv[2]), proportions={"single_image": 0.5,
    "multi_image": 0.5}, seed=0), pool)
cols = ["id", "conversations", "images"]
if sys.argv[3] == "pool.take":
    rows = pool.take(sel.positions, cols).to_pylist()
else:
    rows = pool.table().select(cols).take(sel.positions).to_pylist()
after = mem()
print(json.dumps({"before": before, "after": after, "rows": len(rows),
    "file": pool.path.joinpath("pool.arrow").stat().st_size}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[31_000, 310_000])
    ap.add_argument("--volume", type=int, default=5_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="reuse/keep the pools here")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="ablate-mem-"))
    mib = 2**20
    print(
        f"{'read with':>10} {'pool rows':>10} {'file MiB':>9} {'anon +MiB':>10} {'file pages +MiB':>16}"
    )
    for _ in range(args.repeats):
        for n, how in [(n, how) for how in ("pool.take", "table.take") for n in args.sizes]:
            folder = root / f"pool-{n}"
            if not (folder / "manifest.json").exists():
                write_pool(folder, n)
            res = subprocess.run(
                [sys.executable, "-c", CHILD, str(folder), str(args.volume), how],
                capture_output=True,
                text=True,
                check=True,
            )
            d = json.loads(res.stdout.strip().splitlines()[-1])
            anon = (d["after"]["RssAnon"] - d["before"]["RssAnon"]) / mib
            filep = (d["after"]["RssFile"] - d["before"]["RssFile"]) / mib
            print(f"{how:>10} {n:>10,} {d['file'] / mib:>9,.0f} {anon:>10.1f} {filep:>16.1f}")


if __name__ == "__main__":
    main()
