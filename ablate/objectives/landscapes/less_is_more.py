"""Landscape `less_is_more`: each task type is learnt with diminishing returns,
A ~ sum_i w_i (1 - exp(-p_i / s_i)): every type matters, so balanced mixtures beat skewed ones,
but the optimum is not uniform."""

from __future__ import annotations

from typing import Any

import numpy as np

from ablate.objectives.sim_landscape import LANDSCAPES


def draw_gains(k: int, rng: np.random.Generator) -> dict[str, Any]:
    """Weights w ~ k * Dirichlet(4) and saturation shares s ~ U(0.08, 0.3) per type."""
    return {"w": rng.dirichlet(np.full(k, 4.0)) * k, "s": rng.uniform(0.08, 0.3, size=k)}


def gains(params: dict[str, Any], p: np.ndarray) -> np.ndarray:
    """Per type: w_i (1 - exp(-p_i / s_i))."""
    return params["w"] * (1.0 - np.exp(-p / params["s"]))


@LANDSCAPES.register("less_is_more")
class LessIsMore:
    def draw(self, k: int, rng: np.random.Generator) -> dict[str, Any]:
        return draw_gains(k, rng)

    def raw(self, params: dict[str, Any], p: np.ndarray) -> float:
        return float(gains(params, p).sum())
