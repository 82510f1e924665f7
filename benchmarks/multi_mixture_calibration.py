"""Calibration of the "less is more" verdict when a cell holds several mixtures.

    python benchmarks/multi_mixture_calibration.py [--studies 1000] [--workers 2]

Each simulated study is a random design: 20 mixtures (Dirichlet(1) shares over 3 task types) x
volumes 1,000 / 5,000 / 20,000 rows x 3 seeds. Its 20 balances are binned into quartiles (as
`ablate.analysis.stats.add_levels` bins any design with more than 8), so a cell holds 5 mixtures.
A trial scores  mixture effect + volume effect + seed noise: the mixture effect N(0, 5^2), one per
mixture and the same at every volume (mixtures differ 5x more than seeds do), the volume effect
0 (null) or 1.5 seed SDs at 5,000 rows, the seed noise N(0, 1). "failed": each trial fails with
probability 0.2, so a cell's mixtures can differ between volumes.

Three analyses of the same studies: as shipped (`Design.of(..., mixture=...)`: the seed noise
pooled over replicates of one mixture, and each balance level's cells keeping the same mixtures,
each as often, at every volume, `ablate.analysis.replicates`); the replicate noise alone, cells
of every completed trial (what a first version shipped); the baseline, the noise pooled over
each cell's trials (the verdict before: a cell's mixtures' differences counted as seed noise).

Printed: the share of studies whose overall verdict is "holds" with no volume effect (the
false-positive rate, target <= 5%) and with 1.5 SDs (the power), 95% Wilson intervals.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
from verdict_calibration import rate

VOLUMES = (1000.0, 5000.0, 20000.0)
MIXTURES, SEEDS, TYPES = 20, 3, 3
MIXTURE_SD, EFFECT, FAIL = 5.0, 1.5, 0.2
CHUNK = 50


def simulate(rng: np.random.Generator, effect: float, failed: bool) -> dict[str, np.ndarray]:
    """One study's trials: volume, binned balance, score, completed, seed and mixture."""
    import pandas as pd

    from ablate.analysis.stats import add_levels
    from ablate.mixture import normalized_entropy

    shares = rng.dirichlet(np.ones(TYPES), MIXTURES)
    balance = np.array([normalized_entropy(dict(enumerate(p))) for p in shares])
    offset = rng.normal(0.0, MIXTURE_SD, MIXTURES)
    m = np.tile(np.repeat(np.arange(MIXTURES), SEEDS), len(VOLUMES))
    vol = np.repeat(VOLUMES, MIXTURES * SEEDS)
    seed = np.tile(np.arange(SEEDS), MIXTURES * len(VOLUMES))
    y = offset[m] + np.where(vol == 5000.0, effect, 0.0) + rng.normal(0.0, 1.0, vol.size)
    done = rng.random(vol.size) >= FAIL if failed else np.ones(vol.size, bool)
    levels = add_levels(pd.DataFrame({"volume": vol, "balance": balance[m]}))
    return {
        "volume": levels["vol_level"].to_numpy(),
        "balance": levels["bal_level"].to_numpy(),
        "y": y,
        "done": done,
        "seed": seed,
        "mixture": m.astype(str),  # its shares: the same label at every volume
    }


def run_chunk(key: tuple[str, float, int]) -> np.ndarray:
    """Counts over CHUNK studies of overall "holds": shipped, replicate noise alone, baseline."""
    from ablate.analysis import Design, volume_verdicts
    from ablate.analysis.contrasts import CellMeans
    from ablate.analysis.replicates import replicate_noise

    grid, effect, chunk = key
    rng = np.random.default_rng([grid == "failed", int(10 * effect), chunk])
    counts = np.zeros(3)
    for _ in range(CHUNK):
        t = simulate(rng, effect, grid == "failed")
        args = (t["volume"], t["balance"], t["y"], t["done"])
        shipped = Design.of(*args, seed=t["seed"], mixture=t["mixture"])
        on = t["done"]
        every = CellMeans.of(t["volume"][on], t["balance"][on], t["y"][on])
        same = replicate_noise(t["volume"][on], t["mixture"][on], t["y"][on], every)
        alone = replace(shipped, cells=every, noise=same)
        baseline = Design.of(*args, seed=t["seed"])
        for k, d in enumerate((shipped, alone, baseline)):
            counts[k] += volume_verdicts(d)[0].status == "holds"
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=1000, help="per scenario (x 50)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    chunks = max(1, args.studies // CHUNK)
    n = chunks * CHUNK
    start = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        for grid in ("full", "failed"):
            for effect in (0.0, EFFECT):
                keys = [(grid, effect, c) for c in range(chunks)]
                counts = sum(pool.map(run_chunk, keys))
                rows.append((grid, effect, counts))
    print(f"{n} studies per row, {time.perf_counter() - start:.0f} s")
    print(
        "| grid | volume effect (seed SDs) | holds, shipped (%) | replicate noise alone (%) "
        "| baseline: noise within cells (%) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for grid, effect, counts in rows:
        shares = " | ".join(rate(k, n) for k in counts)
        print(f"| {grid} | {effect:g} | {shares} |")


if __name__ == "__main__":
    main()
