"""The row order behind `rows_per_type` (`ablate.mixture.apportion`) for a near-pool volume: the
release and due volumes precomputed by numpy against the row-at-a-time `_snap` version it
replaced (`old_order`, as before), same run, alternated; both must give the same order.

    python benchmarks/apportion_benchmark.py [--volume 300000] [--repeats 3]

Every fresh process that shows or materialises a mixture with a new share vector builds this
order up to the mixture's volume (`ablate mixture show`, `materialize`, each trial of a sweep).
"""

from __future__ import annotations

import argparse
import heapq
import math
import statistics
import time

import numpy as np

from ablate.mixture import apportion as ap

SHARES = (0.30, 0.10, 0.15, 0.25, 0.08, 0.12)  # six task types, MMCR-like skew


def old_order(shares: tuple[float, ...], volume: int) -> np.ndarray:
    ready = [(math.ceil(ap._snap(1 / p)), i) for i, p in enumerate(shares)]
    heapq.heapify(ready)
    waiting: list[tuple[int, int, int]] = []
    taken, out, h = [0] * len(shares), [], 0
    while h < volume:
        h += 1
        while waiting and waiting[0][0] <= h:
            _, due, i = heapq.heappop(waiting)
            heapq.heappush(ready, (due, i))
        if not ready:
            _, due, i = heapq.heappop(waiting)
            heapq.heappush(ready, (due, i))
        _, i = heapq.heappop(ready)
        out.append(i)
        taken[i] = j = taken[i] + 1
        release = math.floor(ap._snap(j / shares[i])) + 1
        due = math.ceil(ap._snap((j + 1) / shares[i]))
        if release <= h + 1:
            heapq.heappush(ready, (due, i))
        else:
            heapq.heappush(waiting, (release, due, i))
    return np.array(out)


def main() -> None:
    ap_ = argparse.ArgumentParser()
    ap_.add_argument("--volume", type=int, default=300_000)
    ap_.add_argument("--repeats", type=int, default=3)
    args = ap_.parse_args()
    p = ap._normalised(SHARES)
    olds, news = [], []
    for _ in range(args.repeats):  # alternate; a fresh _Order each time (no cache)
        start = time.perf_counter()
        a = old_order(p, args.volume)
        olds.append(time.perf_counter() - start)
        start = time.perf_counter()
        b = ap._Order(p).extend(args.volume).copy()
        news.append(time.perf_counter() - start)
        assert np.array_equal(a, b)
    o, n = statistics.median(olds), statistics.median(news)
    print(
        f"order of {args.volume:,} rows, 6 types: old {o:.2f} s  new {n:.2f} s  old/new {o / n:.2f}x"
    )


if __name__ == "__main__":
    main()
