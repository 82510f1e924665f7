"""`grid`: every combination of `volumes` x `balance` x `seeds`.

A balance level b gives the first task type the share x and the others (1 - x) / (k - 1) each,
with x solved so that the normalised entropy is b (`points.dominant_share`). The dominant type
is always the FIRST of `task_types`: every unbalanced point of the grid is skewed towards the
same type, so "score versus balance" is one clean axis (rotating the dominant type would mix the
balance effect with which type is favoured). List the type you want to skew towards first.
With `design.concentration: [a1, a2, ...]` instead, each level is one draw from the symmetric
Dirichlet(a) (small a = skewed, large a = near uniform), shared by every volume and seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ablate.config import JobSpec
from ablate.design.points import (
    as_props,
    check_types,
    cross_volumes_and_seeds,
    design_rng,
    proportions_for_balance,
)
from ablate.design.registry import DESIGNS
from ablate.mixture import Mixture


@DESIGNS.register("grid")
def grid_design(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    """The volume x balance x seed grid of `job.design`, in that nesting order.

    Points that coincide (e.g. every balance level when there is one task type) appear once.
    """
    types = check_types(task_types)
    d = job.design
    if d.concentration:
        rng = design_rng(job, "grid")
        levels = [
            (f"a{a:g}", as_props(types, rng.dirichlet(np.full(len(types), float(a)))))
            for a in d.concentration
        ]
    else:
        levels = [(f"b{b:.2f}", proportions_for_balance(types, b)) for b in d.balance]
    return cross_volumes_and_seeds(job, levels)
