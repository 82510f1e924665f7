"""`ablate propose JOB.yaml -n N`: the surrogate's N best mixtures in the trust region around the
best tried ones (`ablate.analysis.recommend`), enqueued into the study (once per seed) so that
the next `ablate sweep JOB.yaml` runs them before anything else; `statement` says whether the
first is expected to beat the best tried mixture."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ablate.analysis.groups import main_group, split_groups
from ablate.analysis.load import as_job, load
from ablate.analysis.recommend import MIN_DISTANCE, check_volume, recommend
from ablate.analysis.surrogate_registry import SURROGATES
from ablate.analysis.surrogates import Proposal, Surrogates, fit_surrogates
from ablate.config import JobSpec
from ablate.design import SEARCH
from ablate.errors import UserError, did_you_mean
from ablate.mixture import Mixture, validate, with_within
from ablate.objectives import metric_range
from ablate.plan import drawable, job_task_types
from ablate.pool import open_pool
from ablate.search import CAP_TOL, cube_params
from ablate.study import check_settings, driver_lock, enqueue_design, job_settings, open_study


@dataclass
class Enqueued:
    proposals: list[Proposal]
    trials: int
    """Trials enqueued (proposals x seeds, less those already in the study)."""
    model: str
    spearman: float
    statement: str = ""
    """Whether proposal 1 is expected to beat the best tried mixture (else: the latter is the
    recommendation, and the proposals are exploration)."""
    for_model: str = ""
    """In a study across models (`models:`): the one the proposals were fitted on and train
    on ("" in a one-model study)."""


def propose_and_enqueue(
    job: JobSpec | str | Path,
    n: int,
    volume: float | None = None,
    seeds: tuple[int, ...] | None = None,
    model: str | None = None,
    metric: str | None = None,
    dry_run: bool = False,
    for_model: str | None = None,
    best: bool = False,
) -> Enqueued:
    """Fit the surrogates, take the n best mixtures at `volume` and enqueue them (x seeds) into
    the job's study; the next `ablate sweep JOB.yaml` runs them before anything else.

    `model` names a registered surrogate (default: the lowest held-out regret); a misspelt
    one fails before the study is read, with the closest name. Enqueued like the sweep's own
    points: under the study's driver lock (a running sweep refuses it, naming its driver),
    skipping design points already in the study, and on a search study with the sampler's
    coordinates of each mixture, so the sampler learns the parameters the trial trains on.

    A study across models (`models:`): the surrogates are fitted on one model's trials, the
    report's (the latest trained) or `for_model`, and the trials train on it. Before, every
    model's trials were pooled and the proposals trained on `models[0]`, whatever the fit."""
    job = as_job(job)
    check_volume(volume)
    if n < 1:
        raise UserError(f"-n must be at least 1, got {n}")
    if model is not None:
        SURROGATES.get(model, "ablate propose")
    df, target = one_model(load(job), for_model)
    if not dry_run:  # a running sweep refuses it now, not after the surrogates' fits
        with driver_lock(job, open_study(job, create=False)):
            pass
    sur = _fit(job, df, metric)
    name = model or sur.best
    volume, keep = search_bounds(job, sur.data.types, volume)
    rec = recommend(sur, volume, n=n, name=name, keep=keep)
    proposals, statement = _picked(rec, n, best, seeds, job.objective.metric)
    _check_supply(job, proposals, volume)
    seeds = tuple(seeds) if seeds else tuple(job.design.seeds)
    if dry_run:
        return Enqueued(proposals, 0, name, sur.cv[name].spearman, statement, target)
    study = open_study(job, create=False)
    with driver_lock(job, study):
        # the proposals train with this job's settings: a job a sweep would refuse (another
        # pool, relabelled rows) is refused here too, before anything is enqueued
        level, _ = check_settings(study, job, job_settings(job, job_task_types(job)))
        stamp = len(study.get_trials(deepcopy=False))
        prefix = f"best{stamp}" if best else f"prop{stamp}"
        mixtures, extra = _mixtures(job, proposals, seeds, prefix, name, target)
        params = None
        if job.design.kind == SEARCH:
            types = job_task_types(job)
            params = lambda m: cube_params(job, types, m)  # noqa: E731
        count = enqueue_design(study, mixtures, params, extra=lambda m: extra[m.name], level=level)
    return Enqueued(proposals, count, name, sur.cv[name].spearman, statement, target)


def _picked(
    rec: Any, n: int, best: bool, seeds: tuple[int, ...] | None, metric: str
) -> tuple[list[Proposal], str]:
    """The mixtures to enqueue and what to say of them: the proposals, or with `best` the best
    tried mixture itself (its seed replicates: a search runs each mixture once)."""
    if best:
        if not seeds:
            raise UserError("--best replicates the best tried mixture at --seeds: give them "
                            "(e.g. --seeds 1,2 beside the seed it ran with)")  # fmt: skip
        return [
            rec.best_tried
        ], f"The best tried mixture again, at seeds {', '.join(map(str, seeds))}."
    statement = rec.statement(metric)
    if len(rec.proposals) < n:  # all the trust region holds, each MIN_DISTANCE from the others
        statement += (
            f" Asked for {n} proposals: {len(rec.proposals)} mixture(s) at least "
            f"{MIN_DISTANCE:g} apart (L1) lie in the region the surrogate trusts, around the "
            "best tried mixtures."
        )
    return rec.proposals, statement


def one_model(df: Any, for_model: str | None) -> tuple[Any, str]:
    """The trials of the model proposals are for, and its name: `for_model`, else the one the
    report shows (`main_group`: the latest trained with a completed trial); all trials and ""
    in a one-model study."""
    names = sorted({str(m) for m in df["model"].dropna() if m}) if "model" in df else []
    if for_model is not None and for_model not in names:
        known = ", ".join(names) or "none (a one-model study)"
        raise UserError(
            f"--for-model {for_model}: the study has no trials of that model"
            f"{did_you_mean(for_model, names)}; its models: {known}"
        )
    if len(names) < 2 and for_model is None:
        return df, names[0] if names else ""
    target = for_model or str(
        main_group(split_groups(df[df["model"].isin(names)]))[1]["model"].iloc[0]
    )
    part = df[df["model"] == target].copy()
    part.attrs = dict(df.attrs)
    return part, target


def _fit(job: JobSpec, df: Any, metric: str | None) -> Surrogates:
    """The surrogates of `metric` (default: the objective's), refused on constant scores."""
    df.attrs["range"] = metric_range(job, metric or job.objective.metric)
    column = "value" if metric in (None, job.objective.metric) else metric
    sur = fit_surrogates(df, column)
    if not np.ptp(sur.data.y) > 0:  # a constant (a bench scoring 0 everywhere): no ranking
        raise UserError(
            f"every completed trial of study `{job.study}` scored {sur.data.y[0]:g} on "
            f"{metric or job.objective.metric}: a surrogate has nothing to rank mixtures by, "
            "nothing was enqueued. Check the trials' metrics (`ablate report`) first"
        )
    return sur


def search_bounds(
    job: JobSpec, types: list[str], volume: float | None
) -> tuple[float | None, Callable[[np.ndarray, np.ndarray], np.ndarray] | None]:
    """A search study runs only mixtures inside its bounds: `min_share`, `max_share` and its
    volumes (the range with `search_volume`, else `volumes[0]`). The volume to propose at (a
    search at one volume proposes there) and which candidates keep the bounds; a `--volume`
    outside them is refused. (None, None) for a fixed design: any mixture may be added."""
    d = job.design
    if d.kind != SEARCH:
        return volume, None
    low, high = (min(d.volumes), max(d.volumes)) if d.search_volume else (d.volumes[0],) * 2
    if volume is not None and not low * (1 - 1e-9) <= volume <= high * (1 + 1e-9):
        where = f"between {low:g} and {high:g}" if d.search_volume else f"{low:g}"
        raise UserError(
            f"--volume {volume:g}: this search study runs volumes {where} (`design.volumes`"
            f"{', search_volume' if d.search_volume else ''}); give a --volume within them"
        )
    caps = np.array([d.max_share.get(t, 1.0) for t in types]) + CAP_TOL

    def keep(p: np.ndarray, vols: np.ndarray) -> np.ndarray:
        shares = (p >= d.min_share - CAP_TOL).all(1) & (p <= caps).all(1)
        return shares & (vols >= low * (1 - 1e-9)) & (vols <= high * (1 + 1e-9))

    return (volume if d.search_volume else float(low)), keep


def _check_supply(job: JobSpec, proposals: list[Proposal], volume: float | None) -> None:
    """Refuse proposals the job's pool cannot supply before anything is enqueued (a sweep would
    fail each of their trials), naming --volume when it was given."""
    if job.objective.kind != "train" or job.pool_dir is None:
        return
    manifest, less = drawable(job, open_pool(job.pool_dir))
    asked = "" if volume is None else f" --volume {volume:g}"
    for i, p in enumerate(proposals, 1):
        mix = Mixture(
            name=f"proposal-{i}",
            volume=round(p.volume) if p.volume >= 1 else p.volume,
            proportions=p.proportions,
            taxonomy=job.taxonomy,
        )
        where = f"ablate propose{asked} (proposal {i}; nothing enqueued){less}"
        validate(with_within(mix, job.within, where), manifest, source=where)


def _mixtures(
    job: JobSpec,
    proposals: list[Proposal],
    seeds: Sequence[int],
    prefix: str,
    model: str,
    target: str = "",
) -> tuple[list[Mixture], dict[str, dict[str, Any]]]:
    """One mixture per proposal x seed, named `<prefix>-<i>-v<volume>-s<seed>` (a study across
    models: `<target>-<prefix>-...`, trained on `target`), and the user attributes its trial
    carries besides the usual ones (which surrogate, what it predicted)."""
    mixtures, extra = [], {}
    for i, p in enumerate(proposals):
        vol = round(p.volume) if p.volume >= 1 else p.volume
        for seed in seeds:
            mix = Mixture(
                name=f"{target + '-' if target else ''}{prefix}-{i}-v{vol:g}-s{seed}",
                volume=vol,
                proportions=p.proportions,
                taxonomy=job.taxonomy,
                seed=int(seed),
                model=target,
            )
            mixtures.append(mix)
            extra[mix.name] = {"proposed_by": model, "predicted": p.predicted}
    return mixtures, extra
