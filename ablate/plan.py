"""A job against its registries and its pool: what commands call before any compute is spent.

    load_job(path, overrides)        read the file, check its shape and every kind it names
    validate_job(job)                every design point can be drawn from the pool
    design_mixtures(job, types)      the mixtures a sweep enqueues up front
    search_start(job, types)         a search's: centroid and warm start on its constraints
    check_job_judge(job, probe)      the bench's LLM judge answers, rates and follows the rubric
    judge_key_problem(job)           why a (Ray worker's) node cannot reach the judge: its key

`ablate.config` checks keys, types and ranges; this layer adds what needs the registries (design
kinds, samplers, objective kinds, landscapes), the task types and the pool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ablate.bench import bench_problems, bench_records, load_bench
from ablate.bench.judge_http import judge_key
from ablate.bench.preflight import JudgeCheck, check_judge
from ablate.config import JobSpec, blame_overrides, build, read_job, resolve_path
from ablate.design import DESIGNS, SEARCH, design_key, fixed_design
from ablate.design.kinds.ladder import LADDER, check_ladder_kinds
from ablate.errors import UserError, did_you_mean
from ablate.mixture import (
    Mixture,
    beyond_the_pool,
    check_mixture,
    held_rows,
    heldout_positions,
    load_mixture,
    manifest_without,
    max_volume,
    repeat_cap,
    resolve_proportions,
    rows_per_type,
    validate,
    volume_rows,
    with_within,
)
from ablate.objectives import check_objective
from ablate.pool import Pool, PoolManifest, open_pool
from ablate.registry import import_plugins
from ablate.search import SAMPLERS, default_warm_start, project_warm_start
from ablate.trial.lora_targets import check_lora_targets
from ablate.trial.model_check import check_model_images
from ablate.trial.scorer import SCORERS

#: Slack when comparing sums of shares (shares come from YAML decimals).
SHARE_TOL = 1e-9


def load_job(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> JobSpec:
    """Read a job file and check it whole; pool-dependent checks happen in `validate_job`."""
    job = read_job(path, overrides)
    import_plugins(job.plugins, str(path))
    try:
        check_job_kinds(job, str(path))
    except UserError as err:
        raise blame_overrides(err, path, overrides) from None
    return job


def check_job_kinds(job: JobSpec, src: str) -> None:
    """Every kind the job names exists (did-you-mean otherwise) and fits the rest of the job."""
    check_objective(job, src)
    d = job.design
    if job.models and d.kind == SEARCH:
        raise UserError(
            f"{src}: `design.kind: search` does not take `models:` yet (which model would an "
            "asked trial train?); use a fixed design (grid, lattice, dirichlet, random, ...), "
            "which runs every point once per model, or one search study per model (`model:`)"
        )
    if d.kind == LADDER:
        check_ladder_kinds(job, src)
    if d.kind != SEARCH:
        DESIGNS.get(d.kind, src, also=(SEARCH,))
    else:
        SAMPLERS.get(d.sampler, src)
        if d.warm_start != "none":
            DESIGNS.get(d.warm_start, src, key="design.warm_start")
    if job.task_types:
        check_share_bounds(job, list(job.task_types))


def check_share_bounds(job: JobSpec, task_types: Sequence[str]) -> None:
    """`design.min_share` below 1/k for the k task types, `design.max_share` naming only task
    types, and caps and floor that leave at least one mixture. Checked again once the types
    come from the pool (`job_task_types`): a floor of 0.3 fits 3 types, not 4.

    A mixture p with min_share <= p_t <= cap_t exists iff every cap is at least the floor and
    the caps (1 for an uncapped type) sum to at least 1 (the floor's sum k * min_share <= 1 is
    checked with the floor itself).
    """
    d = job.design
    src = job.source or "job"
    k = len(task_types)
    if k and not d.min_share < 1 / k:
        raise UserError(
            f"{src}: `design.min_share` must lie in [0, 1/{k}) for the {k} task types "
            f"({', '.join(task_types)}), got {d.min_share}: every type at least "
            f"{d.min_share} would need {k * d.min_share:g} > 1 of the mixture"
        )
    for t in d.max_share:
        if t not in task_types:
            raise UserError(
                f"{src}: `design.max_share` names {t!r}, which is not one of the task types"
                f"{did_you_mean(t, task_types)}; they are {', '.join(task_types)}"
            )
    if not d.max_share:
        return
    low = [t for t, cap in d.max_share.items() if cap < d.min_share]
    if low:
        raise UserError(
            f"{src}: `design.max_share.{low[0]}` ({d.max_share[low[0]]}) is below "
            f"`design.min_share` ({d.min_share}): no mixture satisfies both"
        )
    total = sum(float(d.max_share.get(t, 1.0)) for t in task_types)
    if total < 1.0 - SHARE_TOL:
        caps = ", ".join(f"{t} <= {d.max_share.get(t, 1.0):g}" for t in task_types)
        raise UserError(
            f"{src}: `design.max_share` leaves no mixture: the caps over the task types sum to "
            f"{total:g} < 1 ({caps}); raise a cap or leave a type uncapped"
        )


def design_mixtures(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    """The mixtures a sweep enqueues up front: the fixed design; for a search, its start
    (`search_start`)."""
    if job.design.kind != SEARCH:
        return fixed_design(job, task_types)
    return search_start(job, task_types)[0]


def search_start(job: JobSpec, task_types: Sequence[str]) -> tuple[list[Mixture], str | None]:
    """A search's first trials: the default sampler's centroid, then `warm_start`'s design at
    the first seed (a search runs one seed per trial) on the search's constraints
    (`project_warm_start`); and a note when warm-start points broke a `max_share` cap.

    They count toward `n_trials`: more of them than `n_trials` is refused."""
    d = job.design
    points = default_warm_start(job, task_types)
    warm: list[Mixture] = []
    dropped = 0
    if d.warm_start != "none":
        warm = fixed_design(_warm_job(job), task_types, d.warm_start)
        warm = [m for m in warm if m.seed == d.seeds[0]]
        kept, dropped = project_warm_start(job, warm)
        points += kept
    unique = {design_key(m): m for m in reversed(points)}  # one trial each, as enqueued
    points = [m for m in points if unique.get(design_key(m)) is m]
    if len(points) > d.n_trials:
        centroid = " and the centroid" if d.sampler == "default" else ""
        raise UserError(
            f"{job.source}: `design.warm_start` {d.warm_start}{centroid} start the search with "
            f"{len(points)} trials, more than `design.n_trials` ({d.n_trials}), which counts "
            f"every trial: raise `design.n_trials` to at least {len(points)} (the rest are "
            "searched), or choose a smaller warm start (fewer `volumes`, another kind, none)"
        )
    note = (
        f"design.warm_start {d.warm_start}: {dropped} of its {len(warm)} points break "
        "`design.max_share` and are left out"
        if dropped
        else None
    )
    return points, note


def _warm_job(job: JobSpec) -> JobSpec:
    """The job a search's warm start is drawn from: `dirichlet` and `random` draw `n_trials`
    points, which for a search is its whole budget; they draw `n_startup` (default a quarter
    of `n_trials`, at least 2) instead."""
    d = job.design
    if d.warm_start not in ("dirichlet", "random"):
        return job
    n = d.n_startup if d.n_startup is not None else max(2, d.n_trials // 4)
    return replace(job, design=replace(d, n_trials=n))


def job_task_types(job: JobSpec) -> list[str]:
    """The task types a job mixes: its `task_types`, or every label of the pool's taxonomy."""
    if job.task_types:
        return list(job.task_types)
    if job.pool_dir is None:
        raise UserError(f"{job.source}: list `task_types` or give a `pool`")
    types = sorted(job_pool(job).manifest.labels.get(job.taxonomy, {}))
    check_share_bounds(job, types)
    return types


def labelled_pool(job: JobSpec) -> Pool:
    """The job's pool, once its `taxonomy` is a label column of it and every one of the job's
    `task_types` a label there (the pool's labels named when not)."""
    pool = job_pool(job)
    if job.taxonomy not in pool.manifest.labels:
        hint = did_you_mean(job.taxonomy, pool.manifest.labels)
        raise UserError(
            f"{job.source}: `taxonomy` {job.taxonomy!r} is not a label column of the pool "
            f"{job.pool_dir}{hint}; available: {', '.join(pool.manifest.labels)}"
        )
    labels = pool.manifest.labels[job.taxonomy]
    missing = [t for t in job.task_types if t not in labels]
    if missing:
        hint = did_you_mean(missing[0], labels) if len(missing) == 1 else ""
        raise UserError(
            f"{job.source}: `task_types` lists {', '.join(missing)}, which the pool's "
            f"`{job.taxonomy}` lacks{hint}; the pool has {', '.join(sorted(labels))}"
        )
    return pool


def job_pool(job: JobSpec) -> Pool:
    """The job's pool; a folder that is not one is named with the job file and its key (the
    path is relative to the job file's folder, which a user running elsewhere may not expect)."""
    assert job.pool_dir is not None
    try:
        return open_pool(job.pool_dir)
    except UserError as err:
        raise UserError(
            f"{job.source}: `pool: {job.pool}` (relative to the job file's folder) is {err}"
        ) from None


def validate_job(job: JobSpec) -> list[str]:
    """Every design point must be suppliable by the pool and the bench scorable: fail before
    any training; warnings to print (a bench with some unscorable dialogues, or one that
    a kind other than `train` does not read)."""
    if job.objective.kind != "train":
        if job.pool_dir is not None:  # a sim job's pool names its task types: a typo ran
            labelled_pool(job)
        if job.bench_file is None:
            return []
        gone = "" if job.bench_file.is_file() else "; the file does not exist either"
        return [
            f"warning: {job.source}: `bench` {job.bench_file} is not read: objective kind "
            f"`{job.objective.kind}` computes its own score, only kind `train` scores a bench{gone}"
        ]
    assert job.pool_dir is not None  # load_job requires it for kind train
    pool = labelled_pool(job)
    task_types = job_task_types(job)
    check_share_bounds(job, task_types)
    check_lora_targets(job)  # a misspelt target fails here, from config.json, not in each trial
    mixtures = design_mixtures(job, task_types)
    manifest, less = drawable(job, pool)
    _check_design_volumes(job, mixtures, manifest, less)
    _check_search_reach(job, task_types, manifest, less)
    for mixture in mixtures:
        where = f"{job.source} (design point {mixture.name}){less}"
        validate(with_within(mixture, job.within, where), manifest, source=where)
    return check_bench(job) + check_model_images(job)


def _check_search_reach(
    job: JobSpec, task_types: list[str], manifest: PoolManifest, less: str
) -> None:
    """A search proposes any mixture within its bounds, up to a type's largest share (its
    `max_share`, or what the other types' `min_share` floors leave) at the largest volume: one
    the pool cannot supply failed at run time and used up `n_trials` (4 of 6 in a review).
    Refused here, with the cap or the volume that would fit."""
    d = job.design
    if d.kind != SEARCH:
        return
    volume = max(d.volumes) if d.search_volume else d.volumes[0]
    rows = volume_rows(Mixture(volume=volume, proportions={task_types[0]: 1.0}), manifest)
    counts = manifest.labels.get(job.taxonomy, {})
    short = []  # (type, share it can reach, rows that needs, rows the pool has)
    for t in task_types:
        reach = min(d.max_share.get(t, 1.0), 1.0 - (len(task_types) - 1) * d.min_share)
        need, have = math.ceil(reach * rows - 1e-9), counts.get(t, 0)
        if need > have:
            short.append((t, reach, need, have))
    if short:
        what = ", ".join(f"`{t}` {r:.3g} ({n:,} rows; it has {h:,})" for t, r, n, h in short)
        caps = ", ".join(f"{t}: {math.floor(h / rows * 1000) / 1000:g}" for t, _, _, h in short)
        most = min(math.floor(h / r) for _, r, _, h in short)
        raise UserError(
            f"{job.source}: at {rows:,} rows the search can propose shares the pool's "
            f"`{job.taxonomy}`{less} cannot supply: {what}; cap them with `design.max_share: "
            f"{{{caps}}}`, or lower the largest of `design.volumes` to at most {most:,}"
        )


def drawable(job: JobSpec, pool: Pool) -> tuple[PoolManifest, str]:
    """The pool as the job's trials draw from it: less the rows `bench.heldout_of_pool` holds
    out of every trial (they leave the pool before the draw), and a note for messages about
    its counts ('' when nothing is held out)."""
    if not job.heldout_fraction:
        return pool.manifest, ""
    held = held_rows(heldout_positions(pool, job.taxonomy, job.heldout_fraction, job.seed))
    note = f" (counts less the {len(held):,} rows `bench.heldout_of_pool` holds out)"
    return manifest_without(pool, held), note


def check_bench(job: JobSpec) -> list[str]:
    """The job's bench file exists, reads, names a known scorer, and has dialogues that can be
    scored (before any training): a UserError when none can; a warning line when some cannot
    (they are left out of every trial's score, as `info/bench_skipped` counts)."""
    if job.bench_file is None:
        return []
    if not job.bench_file.is_file():
        raise UserError(f"{job.source}: `bench` file {job.bench_file} does not exist")
    spec = load_bench(job.bench_file)
    SCORERS.get(spec.scorer, str(job.bench_file))
    records = bench_records(spec)
    problems = bench_problems(records)
    if not problems:
        return []
    first = "; ".join(problems[:3])
    if len(problems) == len(records):
        raise UserError(
            f"bench {job.bench_file}: none of its {len(records)} dialogues can be scored: "
            f"{first}. Fix its images (paths are relative to its `data` file) or placeholders"
        )
    return [
        f"warning: bench {job.bench_file}: {len(problems)} of its {len(records)} dialogues "
        f"cannot be scored and are left out of every trial's score: {first}"
    ]


def check_job_judge(job: JobSpec, probe: bool = True) -> JudgeCheck | None:
    """The bench's judge checked before any training (`ablate.bench.preflight`: key, server,
    model, one rating, and with `probe` the sanity probe); None when the job trains on no
    judged bench. A UserError names the first failure."""
    if job.objective.kind != "train" or job.bench_file is None:
        return None
    check_bench(job)
    spec = load_bench(job.bench_file)
    if spec.scorer != "judge" or spec.judge is None:
        return None
    return check_judge(spec.judge, job.bench_file, bench_records(spec), probe)


def judge_key_problem(job: JobSpec) -> str | None:
    """Why this node cannot score the job's trials with its judge (the key's variable is not
    set here and no key file is readable here), or None: what each Ray worker checks when it
    starts, on its own node, before any trial (never the key's value)."""
    if job.objective.kind != "train" or job.bench_file is None:
        return None
    try:
        spec = load_bench(job.bench_file)
        if spec.scorer == "judge" and spec.judge is not None:
            judge_key(spec.judge, job.bench_file.parent)
    except UserError as err:
        return str(err)
    return None


def _check_design_volumes(
    job: JobSpec, mixtures: list[Mixture], manifest: PoolManifest, less: str = ""
) -> None:
    """Name the job's own keys when a design volume is more than the pool can supply.

    (A mixture file's message would suggest `max_repeat`, which a job file has no key for.)
    """
    counts = manifest.labels.get(job.taxonomy, {})
    short = []
    for m in mixtures:
        props = resolve_proportions(m, manifest)
        if any(p > 0 and not counts.get(t) for t, p in props.items()):
            continue  # a type the pool lacks: `validate` says so
        beyond = beyond_the_pool(m, manifest, m.name)  # (1e9 rows: not apportioned)
        if beyond:
            cell = next(c for c in beyond if c.rows > c.available * c.max_repeat)
            short.append((m, props, (cell.label, cell.rows)))
            continue
        need = rows_per_type(props, volume_rows(m, manifest))
        over = [(t, n) for t, n in need.items() if n > counts.get(t, 0) * repeat_cap(m, t)]
        if over:
            short.append((m, props, over[0]))
    if not short:
        return
    m, _, (label, n) = short[0]
    cap = min(max_volume(resolve_proportions(x, manifest), counts, x.max_repeat) for x in mixtures)
    volumes = sorted({int(x.volume) for x, _, _ in short})
    raise UserError(
        f"{job.source}: `design.volumes` {', '.join(map(str, volumes))} cannot be drawn from "
        f"the pool {job.pool_dir}: design point {m.name} needs {n:,} rows of `{label}`, the "
        f"pool's `{job.taxonomy}` has {counts.get(label, 0):,}{less}. Lower `design.volumes` to at "
        f"most {cap:,} (the largest volume every `design.balance` level can draw), or import "
        "a larger pool"
    )


def trial_mixture(
    job: JobSpec, mixture_file: str | Path | None = None
) -> tuple[Mixture, list[str]]:
    """The mixture `ablate trial` runs, validated against the pool: `--mixture FILE`, else the
    job's `mixture:` (a path, or an inline mapping whose `taxonomy` defaults to the job's), else
    the design's first point; and the warnings to print (bench dialogues left unscored)."""
    if mixture_file is None and job.mixture is None:
        warnings = validate_job(job)
        return design_mixtures(job, job_task_types(job))[0], warnings
    if mixture_file is not None:
        mixture, where = load_mixture(mixture_file), str(mixture_file)
    elif isinstance(job.mixture, dict):  # inline in the job file
        where = f"{job.source} (`mixture`)"
        inline = {"taxonomy": job.taxonomy, **job.mixture}  # the job's task types by default
        mixture = check_mixture(build(Mixture, inline, job.source, "mixture."), where)
    else:
        assert isinstance(job.mixture, str)
        path = resolve_path(job.mixture, job.base_dir)
        mixture, where = load_mixture(path), str(path)
    if job.objective.kind == "train":
        assert job.pool_dir is not None  # the train objective's check requires it
        check_lora_targets(job)
        manifest, less = drawable(job, job_pool(job))
        nested = with_within(mixture, job.within, f"{job.source} (`within`, on {where})")
        validate(nested, manifest, source=where + less)
        return mixture, check_bench(job) + check_model_images(job)
    _check_mixture_types(job, mixture, where)
    return mixture, []


def _check_mixture_types(job: JobSpec, mixture: Mixture, where: str) -> None:
    """A mixture for an objective that scores shares itself (sim, python): its taxonomy is the
    job's and every type it names one of the job's task types (before: a misspelt type, or a
    `task_type` mixture in a `skill` job, got a meaningless score)."""
    if mixture.taxonomy != job.taxonomy:
        raise UserError(
            f"{where}: the mixture's taxonomy is `{mixture.taxonomy}`, the job's "
            f"({job.source}) is `{job.taxonomy}`; give a mixture over the job's task types"
        )
    if not isinstance(mixture.proportions, dict):
        return
    types = job_task_types(job)
    unknown = [str(t) for t in mixture.proportions if t not in types]
    if unknown:
        hint = did_you_mean(unknown[0], types) if len(unknown) == 1 else ""
        raise UserError(
            f"{where}: `proportions` names {', '.join(unknown)}, not a task type of "
            f"{job.source}{hint}; its task types are {', '.join(types)}"
        )
