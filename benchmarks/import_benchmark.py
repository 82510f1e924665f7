"""Importing 310,000 synthetic LLaVA-JSONL records: records/s and peak memory (issue 3).

    python benchmarks/import_benchmark.py [--records 310000] [--dir DIR]

The records have MMCR-310k's shape (210k single-image 4-turn, 100k multi-image 8-turn
dialogues with `Image1: <image>` prefixes; ~60-word answers), each image path checked on disk.
Each side runs in a fresh subprocess; its peak resident memory is `ru_maxrss` of that child.
Baseline in the same run: the same file read line by line with `json.loads` and nothing else
(the floor any JSONL importer pays). Target: peak memory of the import < 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pool_data import write_jsonl

CHILD = r"""
import json, resource, sys, time
src, out, side = sys.argv[1], sys.argv[2], sys.argv[3]
t = time.perf_counter()
if side == "import":
    from ablate.pool import ImportRequest, import_pool
    m = import_pool(ImportRequest(source=src, out=out))
    n = m.rows
else:
    n = 0
    with open(src, "rb") as fh:
        for line in fh:
            json.loads(line)
            n += 1
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
print(json.dumps({"n": n, "seconds": seconds, "peak": peak}))
"""


def run(side: str, src: Path, out: Path) -> dict[str, float]:
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(out), side],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, float] = json.loads(res.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=310_000)
    ap.add_argument("--dir", type=Path, default=None, help="reuse/keep the source here")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="ablate-import-"))
    src = root / f"jsonl-{args.records}" / "mmcr.jsonl"
    if not src.exists():
        t = time.perf_counter()
        write_jsonl(src.parent, args.records)
        print(f"wrote {args.records:,} records in {time.perf_counter() - t:.0f} s: {src}")
    size = src.stat().st_size
    print(f"source {src.stat().st_size / 2**20:,.0f} MiB, {args.records:,} records")
    for r in range(args.repeats):
        base = run("json", src, root / "unused")
        imp = run("import", src, root / f"pool-{args.records}")
        assert imp["n"] == base["n"] == args.records
        print(
            f"[{r + 1}] json.loads floor: {base['n'] / base['seconds']:9,.0f} records/s "
            f"({base['seconds']:5.1f} s, peak {base['peak'] / 2**20:5.0f} MiB) | "
            f"import: {imp['n'] / imp['seconds']:9,.0f} records/s ({imp['seconds']:5.1f} s, "
            f"{size / 2**20 / imp['seconds']:5.1f} MiB/s, peak {imp['peak'] / 2**20:5.0f} MiB) | "
            f"import / floor time {imp['seconds'] / base['seconds']:.1f}x"
        )
    ok = imp["peak"] < 1.5e9
    print(f"target (peak memory of the import < 1.5 GB): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
