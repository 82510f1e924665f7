"""Proposals that train on data no trial of the search has trained on.

A trial's data is its rows per type (`rows_per_type` of its shares at its volume) drawn at its
seed, and a search runs one seed: two mixtures with the same rows per type at the same volume
train on the same selection and score the same, so the second is a trial spent for nothing.
At small volumes that is common: on the sim landscapes (5 types, 40 trials, 4 seeds each) the
default sampler repeated a selection in 37% of its trials at volume 50 and 2-3% at 200-1000
(benchmarks/distinct_selection_benchmark.py), the GP's proposals near the optimum landing in one
cell of the row lattice.

Rows per type are the floor or the ceiling of share x volume, so two mixtures can share them only
when every share differs by less than 2 / volume: only such near pairs are apportioned exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ablate.mixture.plan import rows_per_type

#: Candidates whose rows per type are computed (each near a tried mixture) before a repeat is
#: accepted: a lattice too small to hold a new selection, where a replicate is the best use left.
#: As many as a proposal scores (4,060 at 3 types): a new selection can rank low. At 3 types and
#: volume 2 the 4th proposal's first new one ranked 348th; capped at the first 256 it repeated a
#: selection while 2 of the 6 were untried. A check is one apportionment (about 150 us at first
#: sight of a share vector), the tried selections computed once per volume: a lattice with no
#: new selection left costs about 0.5 s a proposal, against a trial's minutes.
MAX_EXACT = 4096


def selection(shares: np.ndarray, volume: int, types: Sequence[str]) -> tuple[int, ...]:
    """Rows per type at `volume`, as the trial's materialisation apportions them (by type
    name: the apportionment breaks ties by name)."""
    rows = rows_per_type(dict(zip(types, map(float, shares), strict=True)), volume)
    return tuple(rows.values())


def first_new(
    ranked: Iterable[int],
    shares: np.ndarray,
    volumes: np.ndarray,
    tried: tuple[np.ndarray, np.ndarray],
    exact: Callable[[int], tuple[np.ndarray, int]],
    types: Sequence[str],
) -> int:
    """The first of the `ranked` candidates (indices into `shares` (n, k) and `volumes` (n,))
    whose selection no tried mixture (`tried`: shares, volumes) had; `exact(i)`: candidate i's
    shares and volume exactly as its trial will compute them; `types`: the shares' task types.
    The first of `ranked` when every
    candidate examined repeats a selection."""
    tried_shares, tried_volumes = tried
    order = list(ranked)
    seen: dict[int, set[tuple[int, ...]]] = {}  # volume -> the tried selections at it
    checked = 0
    for i in order:
        volume = volumes[i]
        near = tried_volumes == volume
        near[near] = np.abs(tried_shares[near] - shares[i]).max(1) * volume < 2.0
        if not near.any():
            return int(i)
        if checked == MAX_EXACT:
            continue
        checked += 1
        own, volume = exact(i)
        if volume not in seen:
            at = tried_shares[tried_volumes == volume]
            seen[volume] = {selection(s, volume, types) for s in at}
        if selection(own, volume, types) not in seen[volume]:
            return int(i)
    return int(order[0])


__all__ = ["MAX_EXACT", "first_new", "selection"]
