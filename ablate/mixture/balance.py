"""Balance measures of a proportions mapping, plain functions (the `balance` trial attribute is
`normalized_entropy`)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def _shares(p: Mapping[str, float]) -> np.ndarray:
    values = np.array([float(v) for v in p.values()], dtype=float)
    if values.size == 0 or values.sum() <= 0 or (values < 0).any():
        raise ValueError(f"balance needs non-negative shares with a positive sum, got {dict(p)}")
    return values / values.sum()


def normalized_entropy(p: Mapping[str, float]) -> float:
    """H(p) / log(k) over the k listed types, in 0..1 (0 = one type only, 1 = uniform).

    Types listed with share 0 count in k (they lower the balance). By convention k == 1 gives
    1.0: a single type is trivially spread evenly over the one category there is.
    """
    q = _shares(p)
    if q.size == 1:
        return 1.0
    nz = q[q > 0]
    h = float(-(nz * np.log(nz)).sum())
    return max(0.0, min(1.0, h / math.log(q.size)))


def min_max_ratio(p: Mapping[str, float]) -> float:
    """Smallest share / largest share over the listed types (1 = uniform, 0 = a type is absent)."""
    q = _shares(p)
    return float(q.min() / q.max())


def kl_to_uniform(p: Mapping[str, float]) -> float:
    """KL(p || uniform) in nats over the k listed types = log(k) - H(p); 0 = uniform."""
    q = _shares(p)
    nz = q[q > 0]
    return max(0.0, float((nz * np.log(nz * q.size)).sum()))
