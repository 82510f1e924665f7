"""The job file: one frozen dataclass per section, each field with its docstring."""

from __future__ import annotations

import contextlib
import shlex
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.config.paths import redact, resolve_db_url, resolve_path


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
        job file as the user typed it; default its resolved path). Shell-quoted, so a path with
        spaces pastes as one argument; passwords in `--set` URLs masked (`redact`), as this line
        lands in report.html and its MLflow artifact."""
        sets = "".join(f" --set {shlex.quote(redact(o))}" for o in self.overrides)
        return f"ablate {verb} {shlex.quote(str(path or self.source))}{sets}"

    @property
    def masked_overrides(self) -> bool:
        """Whether `command` masked a password of a `--set` value (its line needs it put back)."""
        return any(redact(o) != o for o in self.overrides)

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
    def source_shown(self) -> str:
        """The job file as the user knows it: relative to the working directory when it lies
        under it (`ray job submit --working-dir .` runs the driver in Ray's temporary copy of
        that folder, whose absolute path the user never saw)."""
        with contextlib.suppress(ValueError):
            return str(Path(self.source).relative_to(Path.cwd().resolve()))
        return self.source

    @property
    def storage_shown(self) -> str:
        """`storage_url` without its password: what messages and records show."""
        return redact(self.storage_url)

    @property
    def tracking_shown(self) -> str:
        return redact(self.tracking_uri)
