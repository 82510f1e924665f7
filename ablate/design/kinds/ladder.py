"""`ladder`: successive halving with model size as the fidelity (issue 15).

    models: [{name: proxy, size: 0.5e9}, {name: mid, size: 2e9}, {name: target, size: 7e9}]
    design: {kind: ladder, ladder_of: grid, volumes: [1000, 5000], balance: [0.4, 0.7, 1.0],
             seeds: [0, 1, 2], promote: 0.34}

Rung 0 runs every mixture of `ladder_of` (x volumes x seeds) on the smallest model (by `size`
when every model has one, else the order of `models:`). Once every trial of a rung is finished,
its mixtures are ranked by their mean over the completed seeds (direction-aware; a tie keeps
the design's order; a mixture with no completed seed is not ranked, hence never promoted) and
the best floor(promote x n) of the rung's n mixtures run, with all their seeds, on the next
size. Arithmetic for 18 mixtures and promote 0.34: 18 -> 6 -> 2 mixtures on three sizes.
With `promote_within: volume` each volume's mixtures are ranked and promoted apart (9 per
volume at 2 volumes: 3 + 3 -> 1 + 1): more data scores higher on every model, so ranked
together the promoted mixtures are all of the largest volume, and the larger models could not
say whether a smaller volume beats it.

These are pure functions of the design and the finished results; the sweep driver reads the
results from the study, records each promotion there and enqueues the next rung
(`ablate.sweep.ladder`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ablate.config import JobSpec, NamedModel
from ablate.design.points import design_key
from ablate.design.registry import DESIGNS, SEARCH
from ablate.errors import UserError
from ablate.mixture import Mixture

LADDER = "ladder"
#: Slack in floor(promote x n): 0.34 x 3 promotes 1, 1/3 x 3 too.
PROMOTE_TOL = 1e-9
#: `design.promote_within`: rank a rung's mixtures together, or each volume's apart.
PROMOTE_WITHIN = ("all", "volume")


def ladder_models(job: JobSpec) -> list[NamedModel]:
    """The rungs' models, smallest first: by `size` when every model has one, else listed order."""
    models = list(job.models)
    if all(m.size is not None for m in models):
        models.sort(key=lambda m: float(m.size or 0.0))  # stable: equal sizes keep list order
    return models


def mixture_key(point: Mixture) -> str:
    """A point's mixture (proportions and volume), the same for every seed and model."""
    return design_key(replace(point, seed=0, model=""))


def n_promoted(promote: float, n: int) -> int:
    return math.floor(promote * n + PROMOTE_TOL)


def check_ladder_kinds(job: JobSpec, src: str) -> None:
    """A ladder needs two models or more and a fixed design kind to take its mixtures from."""
    if len(job.models) < 2:
        raise UserError(
            f"{src}: `design.kind: ladder` climbs from a small model to a large one and needs at "
            f"least two entries in `models:` (the job has {len(job.models)}); list the proxy "
            "sizes and the target, or use `kind: grid` for one model"
        )
    if job.design.ladder_of in (LADDER, SEARCH):
        raise UserError(
            f"{src}: `design.ladder_of: {job.design.ladder_of}` is not a thing: a ladder ranks the "
            "mixtures of a fixed design (grid, lattice, dirichlet, random, corners, ...); a search "
            "asks for its points one by one and has no rung to rank"
        )
    if not 0.0 < job.design.promote < 1.0:
        raise UserError(
            f"{src}: `design.promote` is the share of a rung's mixtures promoted to the next model "
            f"and must lie strictly between 0 and 1, got {job.design.promote}"
        )
    if job.design.promote_within not in PROMOTE_WITHIN:
        raise UserError(
            f"{src}: `design.promote_within: {job.design.promote_within}` is not one of "
            f"{', '.join(PROMOTE_WITHIN)} (all: rank a rung's mixtures together; volume: promote "
            "the best share of each volume)"
        )
    DESIGNS.get(job.design.ladder_of, src, key="design.ladder_of")


def base_points(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    """`ladder_of`'s points (mixtures x volumes x seeds), on no model yet."""
    return DESIGNS.get(job.design.ladder_of, job.source)(job, task_types)


def n_mixtures(points: Sequence[Mixture]) -> int:
    return len({mixture_key(p) for p in points})


def promotion_groups(job: JobSpec, points: Sequence[Mixture]) -> dict[float, list[Mixture]]:
    """The points ranked together: all of them (under volume 0), or each volume's apart
    (`promote_within: volume`)."""
    within = job.design.promote_within == "volume"
    groups: dict[float, list[Mixture]] = {}
    for p in points:
        groups.setdefault(float(p.volume) if within else 0.0, []).append(p)
    return groups


def check_promotion(job: JobSpec, points: Sequence[Mixture]) -> None:
    """Every rung promotes at least one mixture (of each volume, with `promote_within:
    volume`): refused before any training otherwise."""
    src = job.source or "job"
    for volume, group in promotion_groups(job, points).items():
        n = n_mixtures(group)
        at = f" at volume {volume:,.0f}" if job.design.promote_within == "volume" else ""
        for rung in range(len(job.models) - 1):
            nxt = n_promoted(job.design.promote, n)
            if nxt < 1:
                raise UserError(
                    f"{src}: `design.promote: {job.design.promote:g}` promotes no mixture from "
                    f"rung {rung}{at} ({n} mixture(s): floor({job.design.promote:g} x {n}) = 0); "
                    f"set `design.promote` to at least {1.0 / n:.3g}, add mixtures to "
                    "`ladder_of`'s design, or list fewer models"
                )
            n = nxt


@DESIGNS.register(LADDER)
def ladder_design(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    """Rung 0: every point of `ladder_of` on the smallest model (later rungs: `rung_points`)."""
    check_ladder_kinds(job, job.source or "job")
    points = base_points(job, task_types)
    check_promotion(job, points)
    return on_model(points, ladder_models(job)[0])


def on_model(points: Sequence[Mixture], model: NamedModel) -> list[Mixture]:
    return [replace(p, model=model.name, name=f"{model.name}-{p.name}") for p in points]


def rung_points(
    job: JobSpec, task_types: Sequence[str], rung: int, promoted: Collection[str] | None
) -> list[Mixture]:
    """Rung `rung`'s points: the base points whose mixture is `promoted` (all for rung 0)."""
    points = base_points(job, task_types)
    if rung > 0:
        points = [p for p in points if mixture_key(p) in set(promoted or ())]
    return on_model(points, ladder_models(job)[rung])


@dataclass
class Ranked:
    """One mixture of a rung: its name (without model and seed), mean over completed seeds."""

    key: str
    name: str
    values: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    def interval(
        self, level: float = 0.95, noise: tuple[float, int] | None = None
    ) -> tuple[float, float]:
        """The t interval of the mean: with `noise` (a seed SD and its degrees of freedom,
        `pooled_noise`) when it has any, else from this mixture's own seeds; (mean, mean) when
        neither gives a seed SD (one seed, no pool): no interval, which `has_interval` tells."""
        sd, df = noise if noise is not None and noise[1] > 0 else own_noise(self.values)
        if df < 1:
            return self.mean, self.mean
        from scipy import stats  # here: at the top, every `import ablate.plan` paid 0.5-1 s

        half = stats.t.ppf(0.5 + level / 2, df) * sd / len(self.values) ** 0.5
        return self.mean - half, self.mean + half

    def has_interval(self, noise: tuple[float, int] | None = None) -> bool:
        return (noise is not None and noise[1] > 0) or len(self.values) > 1


def own_noise(values: Sequence[float]) -> tuple[float, int]:
    """One mixture's seed SD and its degrees of freedom (n - 1; 0 with one seed)."""
    n = len(values)
    return (float(np.std(values, ddof=1)) if n > 1 else math.nan), max(n - 1, 0)


def pooled_noise(ranked: Sequence[Ranked]) -> tuple[float, int]:
    """The seed SD pooled over a rung's mixtures with 2 or more seeds (one model, so one noise)
    and its degrees of freedom, sum(n - 1); (nan, 0) when no mixture has two seeds. A mixture's
    own 2 seeds give 1 df (t 12.7): the pool is what makes its interval usable."""
    df = sum(len(r.values) - 1 for r in ranked)
    ss = sum(float(np.sum((np.asarray(r.values) - r.mean) ** 2)) for r in ranked)
    return (math.sqrt(ss / df) if df else math.nan), df


@dataclass
class Rung:
    """A finished rung: its mixtures ranked best first, the promoted ones, the unranked ones."""

    index: int
    model: str
    ranked: list[Ranked]
    promoted: list[str]
    """Mixture keys that run on the next model (none after the last rung)."""
    unranked: list[str] = field(default_factory=list)
    """Names of mixtures with no completed seed (all their trials failed): not promoted."""
    noise: tuple[float, int] = (math.nan, 0)
    """The rung's pooled seed SD and its degrees of freedom (`pooled_noise`)."""


def point_name(point: Mixture) -> str:
    """`v5000-b0.70` of `proxy-v5000-b0.70-s1`: the mixture's name without model and seed."""
    name = point.name.removeprefix(f"{point.model}-") if point.model else point.name
    return name.removesuffix(f"-s{point.seed}")


def rank_rung(
    job: JobSpec, index: int, points: Sequence[Mixture], values: Mapping[str, Sequence[float]]
) -> Rung:
    """Rank a finished rung's mixtures by mean over their completed seeds (`values`: design key
    -> completed values) and pick floor(promote x n) of its n mixtures (n counts the unranked)."""
    groups: dict[str, Ranked] = {}
    for p in points:
        r = groups.setdefault(mixture_key(p), Ranked(mixture_key(p), point_name(p), []))
        r.values += [float(v) for v in values.get(design_key(p), ())]
    ranked = [r for r in groups.values() if r.values]
    sign = -1.0 if job.objective.direction == "maximize" else 1.0
    ranked.sort(key=lambda r: sign * r.mean)  # stable: a tie keeps the design's order
    promoted: list[str] = []
    if index < len(job.models) - 1:  # the last rung promotes nothing
        for group in promotion_groups(job, points).values():
            keys = {mixture_key(p) for p in group}
            best = [r.key for r in ranked if r.key in keys]
            promoted += best[: n_promoted(job.design.promote, len(keys))]
    return Rung(
        index=index,
        model=ladder_models(job)[index].name,
        ranked=ranked,
        promoted=sorted(promoted, key=[r.key for r in ranked].index),
        unranked=[r.name for r in groups.values() if not r.values],
        noise=pooled_noise(ranked),
    )


def ladder_cost_lines(
    job: JobSpec,
    n_base: int,
    gpu_seconds: Mapping[str, float],
    target_trials: Sequence[float],
    unit: str = "GPU",
) -> str:
    """`GPU-hours: 1.2 spent, 31% of the full grid on target (3.9: 54 trials x 260 s x 1 GPU)`:
    the spent GPU-seconds of every model against `n_base` trials on the largest model at the
    mean GPU-seconds of its finished trials (`target_trials`). `unit`: "device" when the trials
    ran on CPUs (each counted as one device, as a `gpu_hours` search counts them)."""
    spent = sum(gpu_seconds.values()) / 3600
    target = ladder_models(job)[-1].name
    if not target_trials:
        return f"{unit}-hours: {spent:.3g} spent; the full grid on {target}: not measured yet"
    per = float(np.mean(target_trials))
    full = n_base * per / 3600
    share = f", {100 * spent / full:.0f}% of" if full > 0 else " against"
    return (
        f"{unit}-hours: {spent:.3g} spent{share} the full grid on {target} "
        f"({full:.3g}: {n_base} trials x {per:.3g} {unit}-seconds)"
    )
