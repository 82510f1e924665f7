"""The row order of `apportion` with release and due volumes precomputed by numpy is the order
of the row-at-a-time version it replaced (`old_order`, kept as the reference in
benchmarks/apportion_benchmark.py), for skewed,
uniform, tiny and many-type share vectors, also when extended in pieces as the cache does."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from paths_for_tests import REPO

from ablate.mixture import apportion as ap

sys.path.insert(0, str(REPO / "benchmarks"))
from apportion_benchmark import old_order as _old_order

_RNG = np.random.default_rng(0)
CASES = [(1 / 3, 1 / 3, 1 / 3), (0.01, 0.06, 0.93), (0.5, 0.5), (1.0,), (1e-4, 1 - 1e-4)]
CASES += [tuple(_RNG.dirichlet(np.full(k, a))) for k in (2, 3, 6, 12) for a in (0.2, 1.0, 5.0)]


@pytest.mark.parametrize("shares", CASES)
def test_order_unchanged(shares: tuple[float, ...]) -> None:
    p = ap._normalised(shares)
    order = ap._Order(p)
    for volume in (1, 7, 1000, 6011):  # extended in pieces
        got = order.extend(volume).copy()
    assert np.array_equal(got, _old_order(p, 6011))
    counts = np.bincount(got, minlength=len(p))
    assert list(counts) == ap.counts_at(shares, 6011)
