"""Calibration of the "less is more" verdict (issue 14): false-positive rate and power.

    python benchmarks/verdict_calibration.py [--null 1500] [--alt 400] [--workers 2] [--check 3]

Each simulated study is a 3 x 3 grid (volumes 1,000 / 5,000 / 20,000 rows x balance levels 0.3 /
0.7 / 1.0) with 2, 3 or 5 seeds per cell; a trial scores  effect + noise, the effect (0, 1, 2 or 3
per-trial noise SDs) at 5,000 rows only, so the best smaller volume beats the largest by exactly
that much at every balance level. Noise: N(0, 1), or t with 3 df scaled to SD 1 (heavy tails).
Grids "full" (every trial completes) or "failed" (each trial fails with probability 0.2, so
cells lose seeds and some lose all: the control cell too, at times). Two more rows, 3 seeds on
a full grid, normal noise with the SD 3x at the largest volume: as shipped ("unequal": the
variance check may switch to Welch) and with the variance always pooled ("unequal, pooled",
the baseline in the same run).

The verdicts come from `ablate.analysis.volume_verdicts` and `balance_verdicts` on a `Design`,
the functions `analyse` calls; `analyse` on a trial table adds the per-cell bootstraps of the
plots (9 cells x 2,000 resamples, about 10x the time), too slow for 30,000 studies. `--check N`
sends the first N studies of every null and 2-SD scenario through `analyse` as a trial table
and stops if any verdict differs.

Printed: per scenario, the share of studies whose overall verdict is "holds" (under effect 0
the false-positive rate, else the power) with 95% Wilson intervals; the same for the test at
each balance level (pooled over the 3 levels); how often the wrong verdict "does not hold"
came out under a true effect of 1 SD; how often the balance test claimed an effect (there is
none: its false-positive rate); how often the variance check flagged unequal variances (the
bounds then also computed with a variance per volume, the more cautious kept).
Targets: false-positive rate of "holds" <= 5% (its interval reaching 5% or below) for 2, 3
and 5 seeds, normal and t(3) noise; power >= 80% at 2 SDs with 3 seeds on a full grid.
"""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor
from itertools import product

import numpy as np

VOLUMES = (1000.0, 5000.0, 20000.0)
BALANCES = (0.3, 0.7, 1.0)
FAIL = 0.2
EFFECTS = (0.0, 1.0, 2.0, 3.0)
CHUNK = 100  # studies per task: the random streams depend on it, not on --workers
#: "unequal": SD 3 at the largest volume; "unequal, pooled": the same with the variance check
#: off (always pooled), the baseline that shows what the Welch fallback is for.
NOISES = ("normal", "t3", "unequal", "unequal, pooled")


def simulate(
    rng: np.random.Generator, seeds: int, effect: float, noise: str, failed: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One study's trials: volume, balance, score, completed. Noise "unequal*": normal, with
    the SD 3x at the largest volume (the control), 1 elsewhere."""
    vol = np.repeat(VOLUMES, len(BALANCES) * seeds)
    bal = np.tile(np.repeat(BALANCES, seeds), len(VOLUMES))
    if noise == "t3":
        e = rng.standard_t(3, vol.size) / math.sqrt(3.0)  # t(3) has variance 3
    else:
        e = rng.normal(0.0, 1.0, vol.size)
    if noise.startswith("unequal"):
        e = np.where(vol == VOLUMES[-1], 3.0 * e, e)
    y = np.where(vol == 5000.0, effect, 0.0) + e
    done = rng.random(vol.size) >= FAIL if failed else np.ones(vol.size, bool)
    return vol, bal, y, done


def run_chunk(key: tuple[int, str, str, float, int]) -> np.ndarray:
    """Counts over CHUNK studies: overall holds, per-level holds, per-level tests, does not
    hold, balance false alarms, Welch."""
    from ablate.analysis import Design, balance_verdicts, volume_verdicts
    from ablate.analysis.contrasts import VARIANCE_CHECK

    seeds, grid, noise, effect, chunk = key
    rng = np.random.default_rng([seeds, grid == "failed", NOISES.index(noise), int(effect), chunk])
    check = 0.0 if noise.endswith("pooled") else VARIANCE_CHECK  # 0: always pool
    counts = np.zeros(6)
    for _ in range(CHUNK):
        d = Design.of(*simulate(rng, seeds, effect, noise, grid == "failed"), variance_check=check)
        overall, per_level = volume_verdicts(d)
        balance = balance_verdicts(d)
        counts += (
            overall.status == "holds",
            sum(r.status == "holds" for r in per_level),
            len(per_level),
            overall.status == "does not hold",
            any(b.low is not None and (b.low > 0 or b.high < 0) for b in balance),  # type: ignore[operator]
            not d.noise.pooled,
        )
    return counts


def wilson(k: float, n: float, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return mid - half, mid + half


def rate(k: float, n: float) -> str:
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.1f} ({100 * lo:.1f}-{100 * hi:.1f})"


def check_analyse(n: int) -> int:
    """The first n studies of the null and 2-SD scenarios through `analyse`: same verdicts."""
    import pandas as pd

    from ablate.analysis import Design, analyse, volume_verdicts

    checked = 0
    for seeds, grid, noise, effect in product(
        (2, 3, 5), ("full", "failed"), ("normal", "t3"), (0.0, 2.0)
    ):
        rng = np.random.default_rng([seeds, grid == "failed", NOISES.index(noise), int(effect), 0])
        for _ in range(n):
            vol, bal, y, done = simulate(rng, seeds, effect, noise, grid == "failed")
            df = pd.DataFrame(
                {
                    "state": np.where(done, "COMPLETE", "FAIL"),
                    "volume": vol,
                    "balance": bal,
                    "value": np.where(done, y, np.nan),
                }
            )
            df.attrs.update(metric="score", direction="maximize", study="sim")
            overall, per_level = volume_verdicts(Design.of(vol, bal, y, done))
            f = analyse(df)
            got = [f.overall.status, *(r.status for r in f.per_level)]
            want = [overall.status, *(r.status for r in per_level)]
            assert got == want, (seeds, grid, noise, effect, got, want)
            assert f.overall.low == overall.low
            checked += 1
    return checked


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--null", type=int, default=1500, help="studies per scenario, no effect")
    ap.add_argument("--alt", type=int, default=400, help="studies per scenario with an effect")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--check", type=int, default=3, help="studies per scenario via analyse")
    args = ap.parse_args()
    start = time.perf_counter()
    rows = list(product((2, 3, 5), ("full", "failed"), NOISES[:2]))
    rows += [(3, "full", NOISES[2]), (3, "full", NOISES[3])]
    keys = [
        (s, g, nz, e, c)
        for s, g, nz in rows
        for e in EFFECTS
        for c in range(math.ceil((args.null if e == 0 else args.alt) / CHUNK))
    ]
    with ProcessPoolExecutor(args.workers) as pool:
        results = dict(zip(keys, pool.map(run_chunk, keys, chunksize=4), strict=True))
    total: dict[tuple[int, str, str, float], np.ndarray] = {}
    for (s, g, nz, e, _), counts in results.items():
        total[(s, g, nz, e)] = total.get((s, g, nz, e), np.zeros(6)) + counts
    print(
        "| seeds | grid | noise | false positives, % | power 1 SD | power 2 SD | power 3 SD "
        '| per level: false pos. | per level: power 2 SD | "does not hold" at 1 SD '
        "| balance false pos. | variance check flagged, % |"
    )
    print("| --- " * 12 + "|")
    for s, g, nz in rows:
        null = total[(s, g, nz, 0.0)]
        n0 = math.ceil(args.null / CHUNK) * CHUNK
        n1 = math.ceil(args.alt / CHUNK) * CHUNK
        power = [rate(total[(s, g, nz, e)][0], n1) for e in EFFECTS[1:]]
        two = total[(s, g, nz, 2.0)]
        print(
            f"| {s} | {g} | {nz} | **{rate(null[0], n0)}** | {' | '.join(power)} "
            f"| {rate(null[1], null[2])} | {rate(two[1], two[2])} "
            f"| {rate(total[(s, g, nz, 1.0)][3], n1)} | {rate(null[4], n0)} "
            f"| {100 * null[5] / n0:.0f} |"
        )
    n_studies = sum(CHUNK for _ in keys)
    print(f"\n{n_studies} studies in {time.perf_counter() - start:.0f} s ({args.workers} workers)")
    if args.check:
        t = time.perf_counter()
        print(
            f"through analyse: {check_analyse(args.check)} studies, same verdicts "
            f"({time.perf_counter() - t:.0f} s)"
        )


if __name__ == "__main__":
    main()
