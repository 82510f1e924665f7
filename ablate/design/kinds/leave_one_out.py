"""`leave_one_out`: uniform over every task type but one, each (plus the centroid)."""

from __future__ import annotations

from collections.abc import Sequence

from ablate.config import JobSpec
from ablate.design.points import check_types, cross_volumes_and_seeds, with_centroid
from ablate.design.registry import DESIGNS
from ablate.errors import UserError
from ablate.mixture import Mixture


@DESIGNS.register("leave_one_out")
def leave_one_out_design(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    types = check_types(task_types)
    k = len(types)
    if k < 2:
        raise UserError("design.kind leave_one_out needs at least two task types")
    points = [
        (f"without-{t}", {u: (0.0 if u == t else 1.0 / (k - 1)) for u in types}) for t in types
    ]
    return cross_volumes_and_seeds(job, with_centroid(job, points, types))
