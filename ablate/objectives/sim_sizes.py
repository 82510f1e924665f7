"""Model size in objective kind `sim`: one landscape per model size, with a set rank correlation
between the sizes' mixture rankings, to rehearse studies across sizes (does a small proxy rank
mixtures as the large model does?) and ladder designs in seconds.

    models: [{name: proxy, size: 0.5e9}, {name: mid, size: 2e9}, {name: target, size: 7e9}]
    objective: {kind: sim, landscape: less_is_more, rank_correlation: 0.8}

The smallest size scores the landscape itself, A_0(p). Every size's quality is built on normal
scores over a reference set of mixtures (REFERENCE_DRAWS Dirichlet draws, seeded; see below):
z_0(p) = Phi^-1(F_0(A_0(p))), with F_0 the proxy's quality distribution over the reference set,
and w_i likewise for independent draws of the same landscape family (seed
`landscape_seed + SIZE_SEED_STEP * i`), made uncorrelated with z_0 and each other over the
reference set (Gram-Schmidt: two draws of one family agree on much, e.g. that balanced
mixtures do well, and would otherwise correlate on their own).
Sizes s_0 < s_1 < ... < s_n (the distinct `size`s of `models:`) form a chain in log size:

    z_i = c_i z_(i-1) + sqrt(1 - c_i^2) w_i,   c_i = r^(t_i - t_(i-1)),
    t_i = log(s_i / s_0) / log(s_n / s_0),     r = 2 sin(pi rho / 6)

The Pearson correlation of z between sizes s_i < s_j
is r^(t_j - t_i); r is set (by bisection over the reference mixtures; about 2 sin(pi rho / 6), the Gaussian
relation) so that the Spearman correlation of the smallest and the largest size's rankings over
the reference mixtures is rho = `objective.rank_correlation` (sizes between are closer to both,
in log size). On a design's own mixtures the realised Spearman differs by their spread: within
about 0.07 of rho on average over landscape seeds for a simplex lattice of 3 types (tested
for less_is_more, harmful and synergy; `peaked`, whose bump leaves the lattice's edges equally
poor for every size, realises about 0.63 for rho = 0.5 there). A size's quality is z mapped back through the proxy's distribution,
A_i(p) = F_0^-1(Phi(z_i(p))): every size has the same spread of qualities (up to about 1), only
the ranking moves. rho = 1, or a single size, leaves the landscape as it is. The score is
A_i(p) * V(v) + noise, with the volume curve V and the seed noise of `sim_landscape` (the noise
also depends on the size, so sizes do not share noise draws).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from ablate.objectives.sim_landscape import landscape, seed_noise, volume_factor

#: Mixtures (Dirichlet draws) over which the proxy's quality distribution is taken.
REFERENCE_DRAWS = 4000
#: Their Dirichlet concentration: below 1 puts more of them near the simplex's edges and corners,
#: where lattices, corners and skewed grids put many of their points.
REFERENCE_CONCENTRATION = 0.6
#: Seed offset between the independent landscape draws of successive sizes.
SIZE_SEED_STEP = 7919
_NORMAL = NormalDist()


@functools.lru_cache(maxsize=64)
def _mixtures(k: int, seed: int) -> np.ndarray:
    """The reference mixtures: REFERENCE_DRAWS uniform Dirichlet draws over k types."""
    rng = np.random.default_rng([seed, k, 0x5173])
    return rng.dirichlet(np.full(k, REFERENCE_CONCENTRATION), size=REFERENCE_DRAWS)


@functools.lru_cache(maxsize=256)
def _qualities(name: str, k: int, seed: int, ref_seed: int) -> np.ndarray:
    """The sorted qualities of landscape (name, k, seed) over the reference mixtures."""
    land = landscape(name, k, seed)
    return np.sort(np.array([land.quality(p) for p in _mixtures(k, ref_seed)]))


def _grid(n: int) -> np.ndarray:
    return (np.arange(n) + 0.5) / n


def _normal_score(name: str, k: int, seed: int, ref_seed: int, p: Sequence[float]) -> float:
    """Phi^-1 of a mixture's quality rank among the reference mixtures (interpolated)."""
    ref = _qualities(name, k, seed, ref_seed)
    u = float(np.interp(landscape(name, k, seed).quality(p), ref, _grid(ref.size)))
    return _NORMAL.inv_cdf(min(max(u, 0.5 / ref.size), 1 - 0.5 / ref.size))


@functools.lru_cache(maxsize=64)
def _whitening(
    name: str, k: int, seed: int, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, T^-1) that turn the normal scores (z_0, w_1..w_steps) of a mixture into
    components with mean 0, variance 1 and no correlation over the reference mixtures
    (Gram-Schmidt, z_0 first: its component is z_0 standardised)."""
    raw = np.array(
        [
            [_normal_score(name, k, seed + SIZE_SEED_STEP * j, seed, p) for j in range(steps + 1)]
            for p in _mixtures(k, seed)
        ]
    )
    mean = raw.mean(axis=0)
    _, t = np.linalg.qr((raw - mean) / math.sqrt(raw.shape[0]))
    t = t * np.sign(np.diag(t))[:, None]  # positive diagonal: each component keeps its sign
    t_inv = np.linalg.inv(t)
    return mean, t_inv, (raw - mean) @ t_inv


def size_quality(
    name: str,
    p: Sequence[float],
    landscape_seed: int,
    sizes: Sequence[float],
    size: float,
    rank_correlation: float,
) -> float:
    """A_i(p) of the model of `size` among `sizes` (see the module doc)."""
    k = len(p)
    chain = sorted({float(s) for s in sizes})
    if float(size) not in chain:
        raise ValueError(f"size {size:g} is not among the models' sizes {chain}")
    i = chain.index(float(size))
    if i == 0 or rank_correlation >= 1.0:
        return landscape(name, k, landscape_seed).quality(p)
    seed = landscape_seed
    raw = [_normal_score(name, k, seed + SIZE_SEED_STEP * j, seed, p) for j in range(i + 1)]
    mean, t_inv, _ = _whitening(name, k, seed, i)
    e = (np.asarray(raw) - mean) @ t_inv
    r = _calibrated(name, k, seed, tuple(chain), rank_correlation)
    z = float(_chain(e[None, :], chain[: i + 1], chain, r)[0])
    ref = _qualities(name, k, seed, seed)
    return float(np.interp(_NORMAL.cdf(z), _grid(ref.size), ref))


def _chain(e: np.ndarray, steps: Sequence[float], chain: Sequence[float], r: float) -> Any:
    """z at the last of `steps` (sizes s_0..s_i of `chain`) from components `e` (rows)."""
    span = math.log(chain[-1] / chain[0])
    z = e[:, 0]
    for j in range(1, len(steps)):
        c = r ** (math.log(steps[j] / steps[j - 1]) / span)
        z = c * z + math.sqrt(max(0.0, 1.0 - c * c)) * e[:, j]
    return z


@functools.lru_cache(maxsize=256)
def _calibrated(name: str, k: int, seed: int, chain: tuple[float, ...], rho: float) -> float:
    """r such that the Spearman of z_0 and z_n over the reference mixtures is `rho`: starts
    from the Gaussian relation r = 2 sin(pi rho / 6) and corrects it by bisection (the scores
    are not exactly Gaussian)."""
    from scipy.stats import spearmanr

    *_, e = _whitening(name, k, seed, len(chain) - 1)

    def realised(r: float) -> float:
        return float(spearmanr(e[:, 0], _chain(e, chain, chain, r))[0])

    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if realised(mid) < rho else (lo, mid)
    return 0.5 * (lo + hi)


def sized_sim_score(
    name: str,
    proportions: dict[str, float],
    task_types: Sequence[str],
    volume: float,
    seed: int,
    landscape_seed: int,
    noise: float,
    sizes: Sequence[float],
    size: float,
    rank_correlation: float,
) -> tuple[float, float]:
    """(noisy score, noise-free score) of a mixture on the model of `size`."""
    p = [float(proportions.get(t, 0.0)) for t in task_types]
    quality = size_quality(name, p, landscape_seed, sizes, size, rank_correlation)
    clean = quality * volume_factor(volume)
    return clean + seed_noise(p, volume, seed, landscape_seed, noise, f"|size={size:g}"), clean
