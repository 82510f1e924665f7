"""Landscape `peaked`: a smooth bump around an interior optimum p* (halfway between a
Dirichlet(2) draw and the uniform mixture) in centred-log-ratio coordinates."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ablate.objectives.sim_landscape import LANDSCAPES

EPS = 0.02
"""Keeps the log finite on the faces of the simplex."""


@LANDSCAPES.register("peaked")
class Peaked:
    def draw(self, k: int, rng: np.random.Generator) -> dict[str, Any]:
        target = 0.5 * rng.dirichlet(np.full(k, 2.0)) + 0.5 / k
        c = np.log(target + EPS)
        return {"center": c - c.mean(), "width": 1.2}

    def raw(self, params: dict[str, Any], p: np.ndarray) -> float:
        c = np.log(p + EPS)
        c -= c.mean()
        d = c - params["center"]
        return float(math.exp(-0.5 * float(d @ d) / params["width"] ** 2))
