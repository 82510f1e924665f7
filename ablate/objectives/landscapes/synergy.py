"""Landscape `synergy`: diminishing returns plus pairwise synergies sqrt(p_i p_j) between some
types, A ~ sum_i w_i sqrt(p_i) + sum_{i<j} c_ij sqrt(p_i p_j)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ablate.objectives.sim_landscape import LANDSCAPES


@LANDSCAPES.register("synergy")
class Synergy:
    def draw(self, k: int, rng: np.random.Generator) -> dict[str, Any]:
        w = rng.dirichlet(np.full(k, 3.0)) * k
        c = np.triu(rng.uniform(0.0, 1.0, size=(k, k)) * (rng.random((k, k)) < 0.5), 1)
        return {"w": w, "c": c}

    def raw(self, params: dict[str, Any], p: np.ndarray) -> float:
        root = np.sqrt(p)
        return float(params["w"] @ root + root @ params["c"] @ root)
