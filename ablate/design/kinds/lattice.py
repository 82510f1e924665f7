"""`lattice`: the simplex lattice {0, 1/m, ..., 1}^k summing to 1 (m = `divisions`; k = 3,
m = 2 gives the 3 corners and 3 edge midpoints), plus the centroid (uniform mixture)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ablate.config import JobSpec
from ablate.design.points import (
    as_props,
    check_types,
    cross_volumes_and_seeds,
    lattice_points,
    with_centroid,
)
from ablate.design.registry import DESIGNS
from ablate.errors import UserError
from ablate.mixture import Mixture

#: The most mixtures a lattice design may have (times volumes and seeds, each is a trial).
MAX_LATTICE = 10_000


@DESIGNS.register("lattice")
def lattice_design(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    types = check_types(task_types)
    k, m = len(types), job.design.divisions
    if (n := math.comb(m + k - 1, k - 1)) > MAX_LATTICE:  # (a million divisions ran out of memory)
        raise UserError(
            f"{job.source or 'job'}: `design.divisions` {m} gives {n:,} lattice mixtures of {k} "
            f"types, more than {MAX_LATTICE:,}; lower it (a study runs each of them)"
        )
    points = [
        (f"lat{i}", as_props(types, p))
        for i, p in enumerate(lattice_points(len(types), job.design.divisions))
    ]
    return cross_volumes_and_seeds(job, with_centroid(job, points, types))
