"""Rows per type at every volume at once: a quota apportionment that is monotone in the volume.

`rows_per_type(p, v)` must (1) sum exactly to v, (2) give each type the floor or the ceiling of
its exact share p_t * v (within quota), and (3) never give a type fewer rows at a larger volume.
(3) is what nests selections: each type's rows are a prefix of its draw sequence, so a smaller
volume selects a subset of a larger one. Largest remainder has (1) and (2) but not (3) with three
or more types (the Alabama paradox: p = {.01, .06, .93} gives the .01 type 1 row at volume 40 and
0 at 41); divisor methods (Webster, D'Hondt) have (1) and (3) but break (2) (Webster: about 1%
of volumes with skewed shares over 3 to 12 types, by up to 2.3 rows).

Here the volume grows one row at a time, and each new row goes to a type by earliest deadline
first. Row j of type t is released at the first volume v with j <= ceil(p_t v) (upper quota) and
due at the first v with p_t v >= j (lower quota); of the released types, the one whose next row
is due first gets it (ties: the first by name). For unit jobs with release times, EDF meets every
deadline whenever some order does (Jackson's rule), and one does (Balinski and Young's quota
method), so (2) holds at every volume, and (1) and (3) hold by construction. The order is built
once per share vector and extended on demand (under 1 s per million rows: numpy computes
each row's release and due volume, the heap only picks); the rows at a volume are then a count
over a prefix of it.
"""

from __future__ import annotations

import functools
import heapq
import math
import threading
from array import array

import numpy as np

_SNAP = 1e-9
"""j / p_t within this (relative) of an integer is that integer: 3 / (1/3) is 9, not 9.000...02."""
_NEVER = float(2**62)
"""A release or due volume no selection reaches (fits int64)."""


def _snap(x: float) -> float:
    r = round(x)
    return float(r) if abs(x - r) <= _SNAP * max(1.0, abs(x)) else x


class _Order:
    """The endless order in which rows go to types for one share vector, built on demand."""

    def __init__(self, shares: tuple[float, ...]) -> None:
        self.p = shares
        self.taken = [0] * len(shares)
        # Row 1 of every type is released at volume 1 and due at ceil(1 / p_t).
        self.ready = [(math.ceil(_snap(1 / p)), i) for i, p in enumerate(shares)]
        heapq.heapify(self.ready)
        self.waiting: list[tuple[int, int, int]] = []  # (release, deadline, type)
        self.order = array("I")
        self.lock = threading.Lock()
        self.horizon = 0  # the volume `times` reaches
        self.times: tuple[list[list[int]], list[list[int]]] = ([], [])

    def _times(self, volume: int) -> tuple[list[list[int]], list[list[int]]]:
        """Per type, indexed by j: the release and due volume of its row j + 1, for every j it
        can reach by `volume` (at most ceil(p_t volume) rows: the upper quota), by numpy.

        The same floats as `_snap` on `j / p_t` one at a time (IEEE division; numpy rounds
        halves to even as `round` does)."""
        rel, due = [], []
        for p in self.p:
            j = np.arange(int(p * volume) + 3, dtype=np.float64)  # 2 rows of margin
            # a tiny share's far rows (j / p past 2^62, or inf) are never reached: keep int64
            rel.append((np.floor(_snap_all(j / p, _NEVER)) + 1).astype(np.int64).tolist())
            due.append(np.ceil(_snap_all((j + 1) / p, _NEVER)).astype(np.int64).tolist())
        return rel, due

    def extend(self, volume: int) -> np.ndarray:
        """The type index of rows 1..volume (an int array of length `volume`)."""
        with self.lock:
            h = len(self.order)
            if h >= volume:
                return np.frombuffer(self.order, dtype=np.uint32)[:volume]
            if volume > self.horizon:  # doubled: extending one row at a time stays linear
                self.horizon = max(volume, 2 * self.horizon)
                self.times = self._times(self.horizon)
            rel, dues = self.times
            ready, waiting, taken = self.ready, self.waiting, self.taken
            pop, push, append = heapq.heappop, heapq.heappush, self.order.append
            while h < volume:
                h += 1
                while waiting and waiting[0][0] <= h:
                    _, due, i = pop(waiting)
                    push(ready, (due, i))
                if not ready:  # never, up to rounding: sum_t ceil(p_t h) >= h rows are released
                    _, due, i = pop(waiting)
                    push(ready, (due, i))
                _, i = pop(ready)
                append(i)
                taken[i] = j = taken[i] + 1
                release, due = rel[i][j], dues[i][j]  # of row j + 1
                if release <= h + 1:
                    push(ready, (due, i))
                else:
                    push(waiting, (release, due, i))
            return np.frombuffer(self.order, dtype=np.uint32)[:volume]


def _snap_all(x: np.ndarray, cap: float) -> np.ndarray:
    """`_snap` of every element, at most `cap`."""
    x = np.minimum(x, cap)
    r = np.round(x)
    return np.where(np.abs(x - r) <= _SNAP * np.maximum(1.0, np.abs(x)), r, x)


@functools.lru_cache(maxsize=32)
def _order(shares: tuple[float, ...]) -> _Order:
    return _Order(shares)


def _normalised(shares: tuple[float, ...]) -> tuple[float, ...]:
    total = sum(shares)
    return tuple(s / total for s in shares)


def counts_at(shares: tuple[float, ...], volume: int) -> list[int]:
    """Rows per type (positive `shares`, in a fixed order) at `volume`; sums to `volume`."""
    seq = _order(_normalised(shares)).extend(volume)
    return [int(n) for n in np.bincount(seq, minlength=len(shares))]


def largest_fitting(shares: tuple[float, ...], caps: tuple[int, ...]) -> int:
    """The largest volume at which no type gets more rows than its cap (counts only grow).

    Row cap_t + 1 of type t is due by volume ceil((cap_t + 1) / p_t), so the order up to the
    smallest such volume holds the first type to run over.
    """
    p = _normalised(shares)
    horizon = min(math.ceil(_snap((c + 1) / s)) for c, s in zip(caps, p, strict=True))
    seq = _order(p).extend(horizon)
    best = horizon
    for i, cap in enumerate(caps):
        rows = np.flatnonzero(seq == i)
        if len(rows) > cap:
            best = min(best, int(rows[cap]))  # its row cap + 1 comes at volume rows[cap] + 1
    return best
