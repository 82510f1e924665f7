"""`corners`: one task type alone, each (plus the centroid)."""

from __future__ import annotations

from collections.abc import Sequence

from ablate.config import JobSpec
from ablate.design.points import check_types, cross_volumes_and_seeds, with_centroid
from ablate.design.registry import DESIGNS
from ablate.mixture import Mixture


@DESIGNS.register("corners")
def corners_design(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    types = check_types(task_types)
    points = [(f"only-{t}", {u: float(u == t) for u in types}) for t in types]
    return cross_volumes_and_seeds(job, with_centroid(job, points, types))
