"""Landscape `harmful`: as `less_is_more`, but one task type hurts (negative transfer): the
optimum lies on the face where that type's share is 0."""

from __future__ import annotations

from typing import Any

import numpy as np

from ablate.objectives.landscapes.less_is_more import draw_gains, gains
from ablate.objectives.sim_landscape import LANDSCAPES


@LANDSCAPES.register("harmful")
class Harmful:
    def draw(self, k: int, rng: np.random.Generator) -> dict[str, Any]:
        params = draw_gains(k, rng)
        params["harmful"] = int(rng.integers(k))
        params["penalty"] = 0.5
        return params

    def raw(self, params: dict[str, Any], p: np.ndarray) -> float:
        gain = gains(params, p)
        h = params["harmful"]
        return float(gain.sum() - gain[h] - params["penalty"] * p[h])
