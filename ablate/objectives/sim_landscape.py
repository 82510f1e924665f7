"""Synthetic landscapes for objective kind `sim`, to rehearse sweeps and compare searches.

    objective: {kind: sim, landscape: less_is_more, landscape_seed: 0, noise: 0.01, duration_s: 30}

A sim trial goes through exactly the driver, Ray, Optuna and MLflow path of a training trial;
only the objective differs: it sleeps `duration_s` (the fine-tune it stands for) and returns

    score(p, v) = A(p) * V(v) + noise          (noise-free score in [0, 1], optimum exactly 1)

- V(v) = exp(-(ln(v / 5000) / 1.5)^2 / 2): "less is more": the score peaks at 5,000 rows and
  falls for larger volumes (20,000 rows give 0.65 of the peak), as MMCR's balanced 5k subset
  beat larger ones.
- A(p) is a mixture-quality surface over the simplex, normalised so that its maximum is 1, with
  its weights drawn from `landscape_seed` (same seed, same landscape, on every machine). Each
  surface is one module in `ablate/objectives/landscapes/` registered in `LANDSCAPES`:
  `less_is_more` (diminishing returns per type), `peaked` (a bump around an interior optimum),
  `harmful` (one type hurts: the optimum drops it), `synergy` (pairwise synergies).
- noise: Gaussian, standard deviation `noise`, drawn from (landscape_seed, mixture, seed): the
  same trial gives the same value when rerun; another seed gives another draw (seed noise).

`landscape_optimum` gives the noise-free optimum (for benchmarks: "within 1% of the optimum").
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ablate.registry import Registry

#: The volume (rows) at which every landscape peaks, and the width of the peak in log-rows.
PEAK_VOLUME = 5000.0
VOLUME_WIDTH = 1.5


class LandscapeKind(Protocol):
    """One family of quality surfaces A(p) over the simplex."""

    def draw(self, k: int, rng: np.random.Generator) -> dict[str, Any]:
        """The surface's parameters for k task types, drawn from `rng` (seeded by the caller)."""

    def raw(self, params: dict[str, Any], p: np.ndarray) -> float:
        """Unnormalised quality at proportions `p` (clipped to [0, 1] by the caller)."""


LANDSCAPES: Registry[Callable[[], LandscapeKind]] = Registry(
    "sim landscape", "objective.landscape", package="ablate.objectives.landscapes"
)
"""Landscape name -> class; built in: less_is_more, peaked, harmful, synergy."""


@dataclass(frozen=True)
class Landscape:
    """One drawn landscape over k task types: `quality(p)` in [0, 1] with maximum 1 at `optimum`."""

    name: str
    k: int
    params: dict[str, Any]
    optimum: tuple[float, ...]
    raw_max: float
    kind: LandscapeKind = field(repr=False, compare=False)

    def quality(self, p: Sequence[float]) -> float:
        return _raw(self.kind, self.params, np.asarray(p, dtype=float)) / self.raw_max

    def score(self, p: Sequence[float], volume: float) -> float:
        """The noise-free score A(p) * V(v)."""
        return self.quality(p) * volume_factor(volume)


def volume_factor(volume: float) -> float:
    """V(v): 1 at PEAK_VOLUME, lower for smaller and for larger volumes."""
    z = math.log(max(float(volume), 1.0) / PEAK_VOLUME) / VOLUME_WIDTH
    return math.exp(-0.5 * z * z)


def _raw(kind: LandscapeKind, params: dict[str, Any], p: np.ndarray) -> float:
    return kind.raw(params, np.clip(p, 0.0, 1.0))


@functools.lru_cache(maxsize=256)
def landscape(name: str, k: int, seed: int = 0) -> Landscape:
    """Draw landscape `name` over k task types from `seed` and find its maximum numerically."""
    kind = LANDSCAPES.get(name)()
    rng = np.random.default_rng([seed, k, zlib.crc32(name.encode())])
    params = kind.draw(k, rng)
    best_p, best = _maximise(lambda p: _raw(kind, params, p), k, rng)
    return Landscape(name, k, params, tuple(float(x) for x in best_p), best, kind)


def _maximise(f: Callable[[np.ndarray], float], k: int, rng: np.random.Generator) -> Any:
    """Maximum of f over the simplex: best of 4,000 Dirichlet draws, refined by SLSQP."""
    from scipy.optimize import minimize

    starts = np.vstack([np.full(k, 1.0 / k), np.eye(k), rng.dirichlet(np.ones(k), size=4000)])
    values = np.array([f(p) for p in starts])
    best_p, best = starts[values.argmax()], float(values.max())
    for x0 in starts[np.argsort(-values)[:5]]:
        res = minimize(
            lambda x: -f(x),
            x0,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * k,
            constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0}],
            options={"ftol": 1e-12, "maxiter": 500},
        )
        x = np.clip(res.x, 0.0, 1.0)
        x /= x.sum()
        if f(x) > best:
            best_p, best = x, f(x)
    return best_p, best


def landscape_optimum(name: str, task_types: Sequence[str], seed: int = 0) -> dict[str, float]:
    """The noise-free best proportions of a landscape (its score at PEAK_VOLUME is 1)."""
    land = landscape(name, len(task_types), seed)
    return dict(zip(task_types, land.optimum, strict=True))


def sim_score(
    name: str,
    proportions: dict[str, float],
    task_types: Sequence[str],
    volume: float,
    seed: int = 0,
    landscape_seed: int = 0,
    noise: float = 0.0,
) -> tuple[float, float]:
    """(noisy score, noise-free score) of a mixture; the noise is a pure function of the inputs."""
    p = [float(proportions.get(t, 0.0)) for t in task_types]
    clean = landscape(name, len(task_types), landscape_seed).score(p, volume)
    return clean + seed_noise(p, volume, seed, landscape_seed, noise), clean


def seed_noise(
    p: Sequence[float], volume: float, seed: int, landscape_seed: int, noise: float, tag: str = ""
) -> float:
    """The Gaussian noise of one (mixture, seed): a pure function of the inputs (`tag`: more
    that tells trials apart, e.g. the model's size)."""
    if noise <= 0:
        return 0.0
    key = ",".join(f"{x:.9f}" for x in p) + f"|{float(volume):g}" + tag
    rng = np.random.default_rng([landscape_seed, seed & 0xFFFFFFFF, zlib.crc32(key.encode())])
    return float(rng.normal(0.0, noise))
