"""Importing a hub snapshot with embedded images: records/s, ratio to a floor, peak memory,
images stored against images given (issue 13).

    python benchmarks/embedded_import_benchmark.py [--records 100000] [--image-kb 50]
        [--repeat 0.3] [--dir DIR]

The source is laid out as a dataset repository publishes it: `data/train-0000i-of-0000N.parquet`
shards of 10,000 records in row groups of 100 (as `datasets` writes image sets), in the Hugging
Face layout (`messages` + `images` of `{bytes, path}` structs, no `id`), one ~50 KB PNG per
record (noise pixels, so the bytes do not compress; each made distinct by a counter after the
PNG's end chunk, which decoders ignore). With `--repeat F`, exactly a fraction F of the records
reuse an earlier record's image: the pool must store exactly (1 - F) of the images.

Floor, in the same run: read the same shards with pyarrow (same batch size) and write each
record's image bytes to its own file, nothing else. Each side runs in a fresh subprocess; its
peak resident memory is `ru_maxrss`. Targets: >= 1,500 records/s on 2 cores, <= 2.5x the floor,
peak memory < 1.5 GB.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARD_ROWS = 10_000
GROUP_ROWS = 100

CHILD = r"""
import json, os, sys, time
src, out, side = sys.argv[1], sys.argv[2], sys.argv[3]
t = time.perf_counter()
if side == "import":
    from ablate.pool import ImportRequest, import_pool
    m = import_pool(ImportRequest(source=src, out=out))
    result = {"n": m.rows, "written": m.images_written, "deduplicated": m.images_deduplicated}
else:
    import pyarrow.parquet as pq
    os.makedirs(out, exist_ok=True)
    n = 0
    for shard in sorted(os.listdir(os.path.join(src, "data"))):
        f = pq.ParquetFile(os.path.join(src, "data", shard))
        for batch in f.iter_batches(batch_size=1000, columns=["images"]):
            for images in batch.column("images").to_pylist():
                for image in images:
                    with open(os.path.join(out, f"{n}.png"), "wb") as fh:
                        fh.write(image["bytes"])
                n += 1
    result = {"n": n}
result["seconds"] = time.perf_counter() - t
# VmHWM, not ru_maxrss: a child's ru_maxrss keeps the parent's peak from before its exec
with open("/proc/self/status") as fh:
    hwm = next(line for line in fh if line.startswith("VmHWM:"))
result["peak"] = int(hwm.split()[1]) * 1024
print(json.dumps(result))
"""


def noise_png(kb: int) -> bytes:
    """A PNG of random pixels of about `kb` KB (noise does not compress)."""
    import numpy as np
    from PIL import Image

    side = int((kb * 1024 / 3) ** 0.5)
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_snapshot(root: Path, records: int, kb: int, repeat: float) -> int:
    """The shards; returns the number of distinct images among the records."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = noise_png(kb)
    rng = np.random.default_rng(1)
    # exactly round(repeat * records) records (never the first) show an earlier image again
    repeats = set(rng.choice(np.arange(1, records), size=round(repeat * records), replace=False))
    n_shards = max(1, -(-records // SHARD_ROWS))
    (root / "data").mkdir(parents=True, exist_ok=True)
    distinct = 0
    for s in range(n_shards):
        lo, hi = s * SHARD_ROWS, min(records, (s + 1) * SHARD_ROWS)
        images = []
        for i in range(lo, hi):
            if i in repeats:
                key = int(rng.integers(0, distinct))  # an earlier image again
            else:
                key, distinct = distinct, distinct + 1
            images.append([{"bytes": base + key.to_bytes(8, "little"), "path": None}])
        messages = [
            [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"q{i}"}]},
                {"role": "assistant", "content": [{"type": "text", "text": f"a{i}"}]},
            ]
            for i in range(lo, hi)
        ]
        table = pa.table({"messages": messages, "images": images})
        name = f"train-{s:05d}-of-{n_shards:05d}.parquet"
        pq.write_table(table, str(root / "data" / name), row_group_size=GROUP_ROWS)
    return distinct


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
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--image-kb", type=int, default=50)
    ap.add_argument("--repeat", type=float, default=0.0, help="fraction of repeated images")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="ablate-embedded-"))
    src = work / "snapshot"
    t = time.perf_counter()
    shutil.rmtree(src, ignore_errors=True)
    distinct = write_snapshot(src, args.records, args.image_kb, args.repeat)
    size = sum(p.stat().st_size for p in src.rglob("*.parquet"))
    print(
        f"source: {args.records:,} records, {distinct:,} distinct images, "
        f"{size / 1e9:.2f} GB of shards, written in {time.perf_counter() - t:.0f} s"
    )
    results = {}
    for side in ("floor", "import"):
        out = work / side
        shutil.rmtree(out, ignore_errors=True)
        results[side] = run(side, src, out)
        shutil.rmtree(out, ignore_errors=True)  # keep the disk for the next side
    floor, imp = results["floor"], results["import"]
    rate = imp["n"] / imp["seconds"]
    print(
        f"floor (read + write bytes): {floor['n'] / floor['seconds']:,.0f} records/s, "
        f"peak {floor['peak'] / 2**20:,.0f} MiB"
    )
    print(
        f"ablate data import:         {rate:,.0f} records/s, peak {imp['peak'] / 2**20:,.0f} MiB, "
        f"{imp['seconds'] / floor['seconds']:.2f}x the floor's time"
    )
    print(
        f"images stored {imp['written']:,} of {args.records:,} given "
        f"({imp['written'] / args.records:.1%}; distinct {distinct:,}, "
        f"repeats found {imp['deduplicated']:,})"
    )
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
