"""The design-kind registry: `design.kind` -> a function `(job, task_types) -> list[Mixture]`.

A fixed design kind is one file in `ablate/design/kinds/` that decorates its function with
`@DESIGNS.register("name")`; seed replicates are part of every design (`cross_volumes_and_seeds`).
`search` is not a fixed design: the sweep asks Optuna instead (`ablate.search`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from ablate.config import JobSpec
from ablate.mixture import Mixture
from ablate.registry import Registry

DesignFn = Callable[[JobSpec, Sequence[str]], list[Mixture]]
DESIGNS: Registry[DesignFn] = Registry("design kind", "design.kind", package="ablate.design.kinds")
#: The design kind that asks Optuna for each trial instead of listing mixtures up front.
SEARCH = "search"
_DRAWN = {"n_trials", "prior", "prior_temperature", "min_share", "concentration"}
#: The `design.*` keys each built-in kind reads besides `kind`, `volumes` and `seeds`.
KIND_KEYS: dict[str, set[str]] = {
    "grid": {"balance", "concentration"},
    "lattice": {"divisions", "centroid"},
    "corners": {"centroid"},
    "leave_one_out": {"centroid"},
    "random": _DRAWN,
    "dirichlet": _DRAWN,
    SEARCH: _DRAWN - {"concentration"} | {"max_share", "sampler", "parameterization",
        "search_volume", "multi_objective", "prune", "warm_start", "n_startup"},
    "ladder": {"promote", "promote_within", "ladder_of"},
}  # fmt: skip


def design_keys_read(job: JobSpec) -> set[str] | None:
    """The `design.*` keys the job's design reads (with a ladder's `ladder_of` and a search's
    `warm_start` kinds); None when a kind is not a built-in one (a plugin's may read any)."""
    d = job.design
    kinds = {d.kind, d.ladder_of if d.kind == "ladder" else d.kind}
    kinds |= {d.warm_start} if d.kind == SEARCH and d.warm_start != "none" else set()
    if not kinds <= set(KIND_KEYS):
        return None
    return {"kind", "volumes", "seeds"}.union(*(KIND_KEYS[k] for k in kinds))


def fixed_design(job: JobSpec, task_types: Sequence[str], kind: str | None = None) -> list[Mixture]:
    """The mixtures of a fixed design kind (default: the job's), crossed with volumes x seeds,
    and with the job's `models:` (model-major) unless the kind assigned the models itself."""
    kind = kind or job.design.kind
    points = DESIGNS.get(kind, job.source)(job, task_types)
    return cross_models(job, points)


def cross_models(job: JobSpec, points: list[Mixture]) -> list[Mixture]:
    """Every point once per model of `models:`, all of the first model's first (its name
    prefixes the mixture's); points that name a model already, and one-model jobs, unchanged."""
    if not job.models or any(p.model for p in points):
        return points
    return [replace(p, model=m.name, name=f"{m.name}-{p.name}") for m in job.models for p in points]
