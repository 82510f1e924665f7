"""Objective kind `sim`: built-in synthetic landscapes, to rehearse sweeps and compare searches.

    objective: {kind: sim, landscape: less_is_more, landscape_seed: 0, noise: 0.01, duration_s: 30}

A sim trial goes through exactly the driver, Ray, Optuna and MLflow path of a training trial;
only `run_objective` differs: it sleeps `duration_s` (the fine-tune it stands for) and returns

    score(p, v) = A(p) * V(v) + noise          (noise-free score in [0, 1], optimum exactly 1)

- V(v) = exp(-(ln(v / 5000) / 1.5)^2 / 2): "less is more": the score peaks at 5,000 rows and
  falls for larger volumes (20,000 rows give 0.65 of the peak), as MMCR's balanced 5k subset
  beat larger ones.
- A(p) is a mixture-quality surface over the simplex, normalised so that its maximum is 1, with
  its weights drawn from `landscape_seed` (same seed, same landscape, on every machine):
  - `less_is_more`: each task type is learnt with diminishing returns, A ~ sum_i w_i (1 - exp(-p_i / s_i)):
    every type matters, so balanced mixtures beat skewed ones, but the optimum is not uniform;
  - `peaked`: a smooth bump around an interior optimum p* (halfway between a Dirichlet(2) draw
    and the uniform mixture) in centred-log-ratio coordinates;
  - `harmful`: as `less_is_more`, but one task type hurts (negative transfer): the optimum lies
    on the face where that type's share is 0;
  - `synergy`: diminishing returns plus pairwise synergies sqrt(p_i p_j) between some types.
- noise: Gaussian, standard deviation `noise`, drawn from (landscape_seed, mixture, seed): the
  same trial gives the same value when rerun; another seed gives another draw (seed noise).

`landscape_optimum` gives the noise-free optimum (for benchmarks: "within 1% of the optimum").
"""

from __future__ import annotations

import functools
import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ablate.config import JobSpec
    from ablate.mixture import Mixture
    from ablate.trial import TrialResult

LANDSCAPES = ("less_is_more", "peaked", "harmful", "synergy")
#: The volume (rows) at which every landscape peaks, and the width of the peak in log-rows.
PEAK_VOLUME = 5000.0
VOLUME_WIDTH = 1.5


@dataclass(frozen=True)
class Landscape:
    """One drawn landscape over k task types: `quality(p)` in [0, 1] with maximum 1 at `optimum`."""

    name: str
    k: int
    params: dict[str, Any]
    optimum: tuple[float, ...]
    raw_max: float

    def quality(self, p: Sequence[float]) -> float:
        return _raw(self.name, self.params, np.asarray(p, dtype=float)) / self.raw_max

    def score(self, p: Sequence[float], volume: float) -> float:
        """The noise-free score A(p) * V(v)."""
        return self.quality(p) * volume_factor(volume)


def volume_factor(volume: float) -> float:
    """V(v): 1 at PEAK_VOLUME, lower for smaller and for larger volumes."""
    z = math.log(max(float(volume), 1.0) / PEAK_VOLUME) / VOLUME_WIDTH
    return math.exp(-0.5 * z * z)


def _raw(name: str, q: dict[str, Any], p: np.ndarray) -> float:
    p = np.clip(p, 0.0, 1.0)
    if name in ("less_is_more", "harmful"):
        gain = q["w"] * (1.0 - np.exp(-p / q["s"]))
        if name == "harmful":
            h = q["harmful"]
            return float(gain.sum() - gain[h] - q["penalty"] * p[h])
        return float(gain.sum())
    if name == "peaked":
        eps = 0.02  # keeps the log finite on the faces of the simplex
        c = np.log(p + eps)
        c -= c.mean()
        d = c - q["center"]
        return float(math.exp(-0.5 * float(d @ d) / q["width"] ** 2))
    if name == "synergy":
        root = np.sqrt(p)
        return float(q["w"] @ root + root @ q["c"] @ root)
    raise ValueError(f"unknown landscape {name!r}; built in: {', '.join(LANDSCAPES)}")


@functools.lru_cache(maxsize=256)
def landscape(name: str, k: int, seed: int = 0) -> Landscape:
    """Draw landscape `name` over k task types from `seed` and find its maximum numerically."""
    if name not in LANDSCAPES:
        raise ValueError(f"unknown landscape {name!r}; built in: {', '.join(LANDSCAPES)}")
    rng = np.random.default_rng([seed, k, zlib.crc32(name.encode())])
    params: dict[str, Any] = {}
    if name in ("less_is_more", "harmful"):
        params["w"] = rng.dirichlet(np.full(k, 4.0)) * k
        params["s"] = rng.uniform(0.08, 0.3, size=k)
        if name == "harmful":
            params["harmful"] = int(rng.integers(k))
            params["penalty"] = 0.5
    elif name == "peaked":
        target = 0.5 * rng.dirichlet(np.full(k, 2.0)) + 0.5 / k
        c = np.log(target + 0.02)
        params["center"] = c - c.mean()
        params["width"] = 1.2
    elif name == "synergy":
        params["w"] = rng.dirichlet(np.full(k, 3.0)) * k
        c = np.triu(rng.uniform(0.0, 1.0, size=(k, k)) * (rng.random((k, k)) < 0.5), 1)
        params["c"] = c
    best_p, best = _maximise(lambda p: _raw(name, params, p), k, rng)
    return Landscape(name, k, params, tuple(float(x) for x in best_p), best)


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
    if noise <= 0:
        return clean, clean
    key = ",".join(f"{x:.9f}" for x in p) + f"|{float(volume):g}"
    rng = np.random.default_rng([landscape_seed, seed & 0xFFFFFFFF, zlib.crc32(key.encode())])
    return clean + float(rng.normal(0.0, noise)), clean


def run_sim_objective(
    job: JobSpec,
    mixture: Mixture,
    report: Callable[[int, float], None] | None = None,
) -> TrialResult:
    """Sleep `duration_s`, then return the landscape's score as `objective.metric`.

    With `report_steps` n > 0 the sleep is cut into n steps and `report(step, value)` gets a
    learning curve value(t) = score * (1 - exp(-4 t / n)) / (1 - exp(-4)) after each (for pruning).
    """
    from ablate.trial import TrialResult

    obj = job.objective
    start = time.perf_counter()
    props = {t: float(p) for t, p in dict(mixture.proportions).items()}
    types = list(job.task_types) or sorted(props)
    value, clean = sim_score(
        obj.landscape, props, types, mixture.volume, mixture.seed, obj.landscape_seed, obj.noise
    )
    steps = max(0, obj.report_steps)
    if steps:
        norm = 1.0 - math.exp(-4.0)
        for step in range(1, steps + 1):
            time.sleep(obj.duration_s / steps)
            if report is not None:
                report(step, value * (1.0 - math.exp(-4.0 * step / steps)) / norm)
    elif obj.duration_s > 0:
        time.sleep(obj.duration_s)
    return TrialResult(
        metrics={obj.metric: value, "noise_free": clean},
        seconds=time.perf_counter() - start,
        info={"landscape": obj.landscape, "landscape_seed": obj.landscape_seed},
    )
