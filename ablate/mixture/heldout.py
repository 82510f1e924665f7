"""Rows kept out of every trial of a job (`bench.heldout_of_pool`) and the pool as the mixtures
see it without them.

The held-out rows leave the pool before any selection is drawn: a mixture of 48 rows trains on
48 rows at its shares, drawn from the rest. (Removing them from a drawn selection, as before,
shrank every trial by a seed-dependent count, 8-12 rows at a volume of 12, and moved its shares,
while the study recorded the volume and shares asked for.)
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np

from ablate.pool import Pool, PoolManifest


def heldout_positions(pool: Pool, taxonomy: str, fraction: float, seed: int) -> dict[str, Any]:
    """The same held-out rows for every trial of a job: per label, a seeded share `fraction`
    (at least one row of every label with two or more)."""
    labels = pool.labels(taxonomy)
    out = {}
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)
        n = round(fraction * len(rows))
        n = max(n, 1 if len(rows) >= 2 else 0)
        digest = hashlib.sha256(f"{seed}\x1fheldout\x1f{label}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        out[label] = np.sort(rng.choice(rows, size=n, replace=False)) if n else rows[:0]
    return out


def held_rows(heldout: dict[str, Any] | None) -> np.ndarray:
    """Every held-out position, in one sorted array (empty for None)."""
    if not heldout:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate(list(heldout.values())).astype(np.int64))


def manifest_without(pool: Pool, exclude: np.ndarray) -> PoolManifest:
    """The pool's manifest with the rows at `exclude` taken out of its row and label counts
    (the joint counts of nested mixtures too): what validation and the plan of rows per type
    see, so that a volume the remaining rows cannot supply is refused up front."""
    m = pool.manifest
    if not len(exclude):
        return m
    codes = {t: pool.codes(t) for t in m.labels}
    labels = {}
    for t, counts in m.labels.items():
        c, names = codes[t]
        gone = np.bincount(c[exclude], minlength=len(names))
        labels[t] = {
            k: n - int(gone[names.index(k)]) if k in names else n for k, n in counts.items()
        }
    joint: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
    for a, inner in m.joint.items():
        ca, na = codes[a]
        joint[a] = {}
        for b, table in inner.items():
            cb, nb = codes[b]
            gone_pairs = Counter(
                (na[i], nb[j]) for i, j in zip(ca[exclude], cb[exclude], strict=True)
            )
            joint[a][b] = {
                la: {lb: n - gone_pairs.get((la, lb), 0) for lb, n in row.items()}
                for la, row in table.items()
            }
    return replace(m, rows=m.rows - len(exclude), labels=labels, joint=joint)


__all__ = ["held_rows", "heldout_positions", "manifest_without"]
