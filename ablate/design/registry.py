"""The design-kind registry: `design.kind` -> a function `(job, task_types) -> list[Mixture]`.

A fixed design kind is one file in `ablate/design/kinds/` that decorates its function with
`@DESIGNS.register("name")`; seed replicates are part of every design (`cross_volumes_and_seeds`).
`search` is not a fixed design: the sweep asks Optuna instead (`ablate.search`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ablate.config import JobSpec
from ablate.mixture import Mixture
from ablate.registry import Registry

DesignFn = Callable[[JobSpec, Sequence[str]], list[Mixture]]
DESIGNS: Registry[DesignFn] = Registry("design kind", "design.kind", package="ablate.design.kinds")
#: The design kind that asks Optuna for each trial instead of listing mixtures up front.
SEARCH = "search"


def fixed_design(job: JobSpec, task_types: Sequence[str], kind: str | None = None) -> list[Mixture]:
    """The mixtures of a fixed design kind (default: the job's), crossed with volumes x seeds."""
    kind = kind or job.design.kind
    return DESIGNS.get(kind, job.source)(job, task_types)
