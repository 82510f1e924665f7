"""The job file: one frozen dataclass per section, each field with its docstring."""

from __future__ import annotations

import dataclasses
import shlex
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.config.loader import build, read_yaml, to_dict
from ablate.config.paths import check_store_urls, redact, resolve_db_url, resolve_path
from ablate.config.seeds import check_seeds
from ablate.errors import UserError


@dataclass(frozen=True)
class LoraSpec:
    r: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "language-linear"
    """peft target modules: `language-linear` (the language model's linear layers, the output
    head left out; the vision tower and projector stay frozen), `all-linear` (peft's: every
    linear layer but the head, the vision tower and projector included), or a list of module
    names or suffixes (`q_proj`, `v_proj`, ...)."""
    modules_to_save: tuple[str, ...] = ()
    """Modules trained in full next to the adapter, e.g. `multi_modal_projector` (Llava) or
    `visual.merger` (Qwen2-VL); `vision_tower` trains the whole vision encoder (costly)."""


@dataclass(frozen=True)
class ModelSpec:
    path: str = "tiny-llava"
    """A local model folder or hub id; `tiny-llava` is the built-in offline model."""
    lora: LoraSpec = field(default_factory=LoraSpec)
    kind: typing.Literal["auto", "image-text-to-text", "causal-lm"] = "auto"
    """`auto`: an image-text-to-text model when the folder has a processor with an image
    processor, else a text-only causal LM (for text-only pools and cheap proxies)."""
    trust_remote_code: bool = False
    """Run the model's own Python code from its folder or the hub; only when you trust it."""
    dtype: typing.Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """`auto`: bfloat16 on CUDA, float32 on CPU."""
    attn_implementation: str = "auto"
    """`auto`: sdpa (flash_attention_2 when the package is installed and on CUDA); or any name
    transformers accepts (`eager`, `sdpa`, `flash_attention_2`). A flash attention asked for on
    a machine without CUDA or without its package is refused, naming this key."""


@dataclass(frozen=True)
class NamedModel(ModelSpec):
    """One entry of a job's `models:` list: a model of the study, as `model:` plus a name, its
    own training overrides and resources (e.g. a 0.5B proxy at a quarter of a GPU)."""

    name: str = ""
    """How trials, status lines, MLflow params and the report call this model (unique)."""
    train: dict[str, Any] = field(default_factory=dict)
    """Keys of the job's `train:` this model trains with instead (e.g. `{lr: 1.0e-4}`)."""
    gpus_per_trial: float | None = None
    """GPUs per trial of this model (a fraction shares a GPU); default `resources.gpus_per_trial`."""
    cpus_per_trial: float | None = None
    """CPUs per trial of this model; default `resources.cpus_per_trial`."""
    size: float | None = None
    """Parameters (e.g. 0.5e9): what kind `sim` scales its landscape by (else recorded)."""


@dataclass(frozen=True)
class TrainSpec:
    epochs: float = 1.0
    lr: float = 2.0e-4
    batch_size: int = 8
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides epochs when set)."""
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_length: int = 1024
    """Longest tokenised dialogue; longer ones are cut at a turn boundary."""
    threads: int | None = None
    """torch CPU threads per trial (default: cpus_per_trial)."""
    scheduler: str = "linear"
    """Learning-rate schedule (transformers names: linear, cosine, constant_with_warmup, ...)."""
    grad_accum: int = 1
    """Gradient accumulation steps: an optimizer step sees batch_size x grad_accum rows."""
    group_by_length: bool = False
    """Batch dialogues of similar length together (shuffled groups) to cut padding."""
    packing: bool = False
    """Concatenate whole dialogues into rows of `pack_tokens` tokens (no padding at all; each
    dialogue attends only to itself through a variable-length attention kernel)."""
    pack_tokens: int = 0
    """Tokens per packed row (0: about `batch_size` dialogues' worth, at least the longest);
    with packing this, not `batch_size`, sets a step's memory."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass from the start: ~30% slower, much less memory.
    Off, a trial that runs out of GPU memory is redone with it (so it is used only when needed)."""
    max_skipped: float = 0.05
    """Largest share of a task type's selected dialogues a trial may leave out (unreadable
    image, first answer beyond `max_length`, ...); above it the trial fails naming the reasons,
    since its mixture would no longer be the one asked for."""
    liger: bool = False
    """Use Liger kernels on CUDA (`pip install 'ablate[gpu]'`); off on a machine without CUDA
    (the trial's `info["liger"]` says so); refused on CUDA without the package."""
    checkpoint_dir: str | None = None
    """Folder (relative to the job file; shared storage on a cluster) for per-trial checkpoints:
    `<dir>/<selection hash[:16]>-s<seed>/`; a retried trial resumes from its last one."""
    checkpoint_every: int = 0
    """Save adapter + optimizer state every N optimizer steps (0: no checkpoints)."""
    eval_every: int = 0
    """Score the bench every N optimizer steps (0: only at the end) and report the objective
    metric as an intermediate value: a learning curve, and what `design.prune` prunes on."""


@dataclass(frozen=True)
class ObjectiveSpec:
    kind: str = "train"
    """A registered objective kind (`ablate.objectives.OBJECTIVES`); built in: `train`: fine-tune
    and benchmark; `python`: call `target` instead (rehearse a sweep); `sim`: a built-in synthetic
    landscape (`ablate/objectives/sim_landscape.py`), no training."""
    metric: str = "overall_accuracy"
    direction: typing.Literal["maximize", "minimize"] = "maximize"
    target: str | None = None
    """For kind python: `module:function` taking (proportions, volume, seed) -> float."""
    landscape: str = "less_is_more"
    """For kind sim: a registered landscape (`ablate.objectives.LANDSCAPES`); built in:
    less_is_more | peaked | harmful | synergy (see ablate/objectives/landscapes/)."""
    landscape_seed: int = 0
    """For kind sim: draws the landscape's optimum and weights (same seed = same landscape)."""
    noise: float = 0.0
    """For kind sim: standard deviation of the Gaussian noise added per (mixture, seed)."""
    duration_s: float = 0.0
    """For kind sim: seconds each trial sleeps, like a fine-tune would take."""
    report_steps: int = 0
    """For kind sim: intermediate values reported during the trial (for `design.prune`)."""
    rank_correlation: float = 1.0
    """For kind sim with `models:` of several `size`s: Spearman correlation between the smallest
    and the largest model's mixture rankings (sizes between follow in log size; see
    `ablate/objectives/sim_sizes.py`)."""


@dataclass(frozen=True)
class DesignSpec:
    kind: str = "grid"
    """A design kind (`ablate/design/kinds/`, or `search`): grid: volumes x balance x seeds; lattice: simplex lattice + centroid; corners: one task
    type each; leave_one_out: uniform over all types but one; dirichlet: a space-filling
    Dirichlet cover around `prior`; random: `n_trials` Dirichlet draws; search: Optuna;
    ladder: `ladder_of`'s mixtures on the smallest of `models:`, the best `promote` on the next."""
    volumes: tuple[int, ...] = (1000,)
    """Rows per trial."""
    balance: tuple[float, ...] = (1.0,)
    """Normalised entropy of the proportions, 0 (one task type) .. 1 (uniform)."""
    seeds: tuple[int, ...] = (0,)
    """Replicates: each seed draws a different subset and trains with a different init."""
    concentration: tuple[float, ...] = ()
    """grid: balance levels as symmetric Dirichlet concentrations instead of entropies
    (small = skewed, large = balanced); random/dirichlet: concentration of the draws."""
    divisions: int = 2
    """lattice: the simplex lattice {0, 1/m, ..., 1} with m = divisions."""
    centroid: bool = True
    """lattice, corners, leave_one_out: also run the uniform mixture."""
    n_trials: int = 20
    """random, dirichlet: mixtures drawn (before seed replicates); search: trials asked."""
    prior: str | dict[str, float] = "natural"
    """dirichlet/random/search: `natural` (the pool's proportions; uniform without a pool),
    `uniform`, or a mapping of task type -> share."""
    prior_temperature: float = 0.5
    """`natural` prior raised to this power and renormalised (RegMix uses 0.5)."""
    min_share: float = 0.0
    """dirichlet/random/search: every task type gets at least this share."""
    max_share: dict[str, float] = field(default_factory=dict)
    """search: per-type upper bounds, enforced as Optuna constraints (`trial.set_constraint`)."""
    sampler: str = "default"
    """search: a sampler of `ablate/search/samplers/` (default, tpe, gp, cmaes, random, qmc); `default` = centroid + maximin start, then a GP on sqrt(shares)
    (ablate/search/mixture_sampler.py)."""
    parameterization: typing.Literal["stick", "logu"] = "stick"
    """search: `stick` (k-1 coordinates, one per mixture) or `logu` (Optuna FAQ: k -log(u))."""
    search_volume: bool = False
    """search: also search the volume, log-uniform between min and max of `volumes`."""
    multi_objective: typing.Literal["none", "volume", "gpu_hours"] = "none"
    """search: also minimise volume or GPU-hours; the Pareto front is `study.best_trials`."""
    prune: bool = False
    """search: prune trials from intermediate values (Optuna MedianPruner)."""
    warm_start: str = "none"
    """search: `none` or a fixed design kind: enqueue that design (built from the keys above) before searching."""
    n_startup: int | None = None
    """search: trials before the sampler models the results (sampler default when unset)."""
    promote: float = 0.34
    """ladder: the share of a rung's mixtures (best mean over seeds) that runs on the next size."""
    promote_within: str = "all"
    """ladder: `all` ranks a rung's mixtures together; `volume` promotes the best `promote`
    share at each volume, so every model runs every volume (a verdict at each size)."""
    ladder_of: str = "grid"
    """ladder: the fixed design kind whose mixtures the first rung (the smallest model) runs."""


@dataclass(frozen=True)
class ResourceSpec:
    gpus_per_trial: float | None = None
    """GPUs per trial; default 1 when the Ray cluster has GPUs, else 0 (CPU)."""
    cpus_per_trial: float = 1.0
    max_in_flight: int = 8


@dataclass(frozen=True)
class BenchRef:
    file: str | None = None
    """A bench YAML file (relative to the job file)."""
    heldout_of_pool: float = 0.0
    """Hold this share of the pool out of every trial's training (the same rows for every
    trial, drawn from the job's `seed`) and report `heldout_loss` and
    `heldout_loss/<task_type>` on it."""


@dataclass(frozen=True)
class JobSpec:
    study: str
    """Optuna study name; running the same job again resumes it."""
    storage: str = "sqlite:///ablate.db"
    tracking: str = "sqlite:///mlflow.db"
    pool: str | None = None
    """A pool folder made by `ablate data import` (relative to this file)."""
    bench: str | BenchRef | None = None
    """A bench YAML file (relative to this file), or `{file: ..., heldout_of_pool: FRACTION}`."""
    mixture: str | dict[str, Any] | None = None
    """The mixture `ablate trial` runs: a mixture YAML path (relative to this file) or an
    inline mapping with the keys of a mixture file; default: the design's first point."""
    taxonomy: str = "task_type"
    """The pool label column the proportions refer to."""
    task_types: tuple[str, ...] = ()
    """Task types to mix; default: all of the pool's taxonomy."""
    within: dict[str, Any] = field(default_factory=dict)
    """label -> {taxonomy, proportions}: a nested split held fixed at every design point (as a
    mixture file's `within`), e.g. a base source's task types while the design varies sources."""
    model: ModelSpec = field(default_factory=ModelSpec)
    models: tuple[NamedModel, ...] = ()
    """Several models in one study (instead of `model:`): every design point runs once per
    model; each trial records its model's `name`."""
    train: TrainSpec = field(default_factory=TrainSpec)
    objective: ObjectiveSpec = field(default_factory=ObjectiveSpec)
    design: DesignSpec = field(default_factory=DesignSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    seed: int = 0
    """Seed of the design and sampler."""
    plugins: tuple[str, ...] = ()
    """Python modules imported before the job is checked, and on every worker before a trial:
    each may register design kinds, samplers, objective kinds, landscapes or scorers of its
    own (see the README's "Extending ablate")."""
    source: str = field(default="", metadata={"internal": True})
    """The file this job came from (set by `load_job`)."""
    overrides: tuple[str, ...] = field(default=(), metadata={"internal": True})
    """The `--set key=value` overrides it was read with (set by `load_job`)."""

    def command(self, verb: str, path: str | None = None) -> str:
        """`ablate VERB JOB --set ...`: the command that acts on this same study (`path`: the
        job file as the user typed it; default its resolved path)."""
        sets = "".join(f" --set {shlex.quote(o)}" for o in self.overrides)
        return f"ablate {verb} {path or self.source}{sets}"

    @property
    def base_dir(self) -> Path:
        return Path(self.source).resolve().parent if self.source else Path.cwd()

    @property
    def pool_dir(self) -> Path | None:
        return resolve_path(self.pool, self.base_dir) if self.pool else None

    @property
    def bench_file(self) -> Path | None:
        path = self.bench.file if isinstance(self.bench, BenchRef) else self.bench
        return resolve_path(path, self.base_dir) if path else None

    @property
    def heldout_fraction(self) -> float:
        """Share of the pool held out of training and scored by loss (0: none)."""
        return self.bench.heldout_of_pool if isinstance(self.bench, BenchRef) else 0.0

    @property
    def storage_url(self) -> str:
        return resolve_db_url(self.storage, self.base_dir)

    @property
    def tracking_uri(self) -> str:
        return resolve_db_url(self.tracking, self.base_dir)

    @property
    def storage_shown(self) -> str:
        """`storage_url` without its password: what messages and records show."""
        return redact(self.storage_url)

    @property
    def tracking_shown(self) -> str:
        return redact(self.tracking_uri)


def read_job(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> JobSpec:
    """Read a job file and check its shape (keys, types, ranges).

    The kinds it names (design, sampler, objective, landscape) are checked against their
    registries by `ablate.plan.load_job`, which is what commands call.
    """
    data = read_yaml(path, overrides)
    if data.get("models") and data.get("model") not in (None, {}, to_dict(ModelSpec())):
        # (a job written back by `to_dict` carries the default `model:` beside `models:`)
        raise UserError(
            f"{path}: the job names both `model` (one model) and `models` (a list); keep one: "
            "`models` for a study across models (move `model`'s keys into a named entry), or "
            "`model` alone for a one-model study"
        )
    job = build(JobSpec, data, path)
    job = dataclasses.replace(job, source=str(Path(path).resolve()), overrides=tuple(overrides))
    check_job_shape(job, str(path))
    return job


def check_job_shape(job: JobSpec, src: str) -> None:
    """Ranges and consistency of the job's keys; `src` names the file in every message."""
    if not job.study.strip():
        raise UserError(f"{src}: `study` must be a non-empty name")
    check_store_urls(job.storage, job.tracking, src)
    seeds = {"seed": [job.seed], "design.seeds": job.design.seeds}
    check_seeds({**seeds, "objective.landscape_seed": [job.objective.landscape_seed]}, src)
    _check_design_points(job.design, src)
    _check_design_shares(job, src)
    _check_run(job, src)
    _check_models(job, src)


def _check_design_points(d: DesignSpec, src: str) -> None:
    for i, v in enumerate(d.volumes):
        if v <= 0:
            raise UserError(
                f"{src}: `design.volumes[{i}]` must be a positive number of rows, got {v}"
            )
    for i, b in enumerate(d.balance):
        if not 0.0 <= b <= 1.0:
            raise UserError(
                f"{src}: `design.balance[{i}]` must lie in 0..1 (normalised entropy), got {b}"
            )
    if not d.volumes or not d.balance or not d.seeds:
        raise UserError(
            f"{src}: `design.volumes`, `design.balance` and `design.seeds` need at least one value"
        )
    for key, values in (("volumes", d.volumes), ("balance", d.balance), ("seeds", d.seeds)):
        twice = sorted({v for v in values if list(values).count(v) > 1})
        if twice:  # the design would run it once, while `ablate plan` counted it twice
            raise UserError(
                f"{src}: `design.{key}` lists {', '.join(map(str, twice))} more than once; "
                f"each value is one level of the design: list it once"
            )
    for key, value in (
        ("design.n_trials", d.n_trials),
        ("design.divisions", d.divisions),
        ("design.prior_temperature", d.prior_temperature),
    ):
        if not value > 0:
            raise UserError(f"{src}: `{key}` must be positive, got {value}")
    for i, c in enumerate(d.concentration):
        if not c > 0:
            raise UserError(f"{src}: `design.concentration[{i}]` must be positive, got {c}")


def _check_design_shares(job: JobSpec, src: str) -> None:
    d = job.design  # against the k task types: `ablate.plan.check_share_bounds`
    if not 0 <= d.min_share < 1:
        raise UserError(f"{src}: `design.min_share` is a share in [0, 1/k), got {d.min_share}")
    for t, m in d.max_share.items():
        if not 0 < m <= 1:
            raise UserError(f"{src}: `design.max_share.{t}` must lie in (0, 1], got {m}")
    if isinstance(d.prior, str) and d.prior not in ("natural", "uniform"):
        raise UserError(
            f"{src}: `design.prior` must be natural, uniform or a mapping of task type -> share, got {d.prior!r}"
        )
    if d.search_volume and (len(d.volumes) < 2 or min(d.volumes) == max(d.volumes)):
        raise UserError(
            f"{src}: `design.search_volume` needs `design.volumes` with a smaller and a larger "
            f"value (the range searched), got {list(d.volumes)}"
        )
    if d.kind == "search" and len(d.seeds) > 1:  # (it ran seeds[0] and said nothing)
        raise UserError(
            f"{src}: a search runs each mixture once, at one seed; `design.seeds` lists "
            f"{list(d.seeds)}: list one, and replicate the best mixtures afterwards "
            "(`ablate propose JOB.yaml --seeds 0,1,2`, or a grid around them)"
        )
    if d.kind == "search" and len(d.volumes) > 1 and not d.search_volume:
        raise UserError(
            f"{src}: `design.volumes` lists {list(d.volumes)}, but a search without "
            "`design.search_volume: true` runs only the first; set `search_volume: true` to "
            "search between the smallest and the largest, or list one volume"
        )
    if d.prune and d.multi_objective != "none":  # Optuna's trials cannot report then
        raise UserError(
            f"{src}: `design.prune` cannot go with `design.multi_objective: "
            f"{d.multi_objective}` (Optuna prunes on one objective's intermediate values); "
            "set `design.prune: false`, or search one objective"
        )


def _check_run(job: JobSpec, src: str) -> None:
    if not job.objective.noise >= 0 or not job.objective.duration_s >= 0:
        raise UserError(f"{src}: `objective.noise` and `objective.duration_s` must be 0 or more")
    if len(set(job.task_types)) != len(job.task_types):
        raise UserError(f"{src}: `task_types` lists a type twice: {list(job.task_types)}")
    # `not x > 0` also catches NaN, which `x <= 0` lets through
    positive = {
        "train.lr": job.train.lr,
        "train.epochs": job.train.epochs,
        "train.batch_size": job.train.batch_size,
        "train.max_steps": 1 if job.train.max_steps is None else job.train.max_steps,
        "train.max_length": job.train.max_length,
        "resources.max_in_flight": job.resources.max_in_flight,
        "resources.cpus_per_trial": job.resources.cpus_per_trial,
        "model.lora.r": job.model.lora.r,
        "model.lora.alpha": job.model.lora.alpha,
        "train.grad_accum": job.train.grad_accum,
    }
    for key, value in positive.items():
        if not value > 0:
            raise UserError(f"{src}: `{key}` must be positive, got {value}")
    gpus = job.resources.gpus_per_trial
    if gpus is not None and not gpus >= 0:
        raise UserError(f"{src}: `resources.gpus_per_trial` must be 0 or more, got {gpus}")
    if job.train.pack_tokens and not job.train.pack_tokens >= job.train.max_length:
        raise UserError(
            f"{src}: `train.pack_tokens` ({job.train.pack_tokens}) must be 0 (automatic) or at "
            f"least `train.max_length` ({job.train.max_length}), so every dialogue fits a row"
        )
    if not 0 <= job.train.warmup_ratio < 1 or not 0 <= job.model.lora.dropout < 1:
        raise UserError(f"{src}: `train.warmup_ratio` and `model.lora.dropout` must lie in [0, 1)")
    if not 0 <= job.train.max_skipped <= 1:
        raise UserError(
            f"{src}: `train.max_skipped` is a share of a task type's dialogues, in [0, 1]; got "
            f"{job.train.max_skipped}"
        )


def _check_models(job: JobSpec, src: str) -> None:
    """Names unique and non-empty, training overrides that `train:` knows, resources >= 0."""
    if not 0.0 <= job.objective.rank_correlation <= 1.0:
        raise UserError(
            f"{src}: `objective.rank_correlation` must lie in [0, 1], got "
            f"{job.objective.rank_correlation}"
        )
    for i, m in enumerate(job.models):
        key = f"models[{i}]"
        if not m.name.strip():
            raise UserError(f"{src}: `{key}.name` is missing: give every model a short name")
        if m.name in [earlier.name for earlier in job.models[:i]]:
            raise UserError(
                f"{src}: `{key}.name` {m.name!r} names two models; give each model its own name"
            )
        build(TrainSpec, {**to_dict(job.train), **m.train}, src, f"{key}.train.")
        for what, value in (("gpus_per_trial", m.gpus_per_trial), ("size", m.size)):
            if value is not None and not value >= 0:
                raise UserError(f"{src}: `{key}.{what}` must be 0 or more, got {value}")
        if m.cpus_per_trial is not None and not m.cpus_per_trial > 0:
            raise UserError(
                f"{src}: `{key}.cpus_per_trial` must be positive, got {m.cpus_per_trial}"
            )
        if not m.lora.r > 0 or not m.lora.alpha > 0:
            raise UserError(f"{src}: `{key}.lora.r` and `{key}.lora.alpha` must be positive")
