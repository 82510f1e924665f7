"""YAML files -> frozen dataclasses, with `--set a.b=c` overrides and precise errors.

Every user-facing file (job, mixture, bench) goes through `read_yaml` + `build`, so an unknown
key, a wrong type or a missing value fails the same way: the file, the dotted key, what is
wrong and what would fix it, before any compute is spent.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ablate.errors import UserError

T = TypeVar("T")


def read_yaml(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a YAML mapping and apply `key.sub=value` overrides (values parsed as YAML)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {err}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (not UTF-8); expected a YAML file") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise UserError(
            f"{path}: expected a mapping of keys at the top level, found {type(data).__name__}"
        )
    for item in overrides:
        apply_override(data, item, path)
    return data


def apply_override(data: dict[str, Any], item: str, path: str | Path = "--set") -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (`1e-3`, `[1, 2]`)."""
    import yaml

    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {item!r}: expected KEY=VALUE, for example --set train.lr=1e-3")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(
                f"{path}: --set {item!r}: `{part}` is not a mapping, cannot set `{key}`"
            )
        node = child
    try:
        node[parts[-1]] = yaml.load(raw, Loader=_loader())
    except yaml.YAMLError:
        node[parts[-1]] = raw


_FLOAT_WITHOUT_DOT = r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"
"""`1e-3`, `5E4`: floats in YAML 1.2 (and to every reader), strings to PyYAML's YAML 1.1."""


@functools.cache
def _loader() -> type:
    """PyYAML's safe loader, also reading `1e-3` as a float (as `--set train.lr=1e-3` means)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float", re.compile(_FLOAT_WITHOUT_DOT), list("-+0123456789")
    )
    return Loader


def build(cls: type[T], data: Any, source: str | Path, prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking every key and type against its fields."""
    where = f"{source}: `{prefix.rstrip('.')}`" if prefix else str(source)
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping, found {data!r}")
    hints = typing.get_type_hints(cls)
    known = {
        f.name: f
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.init and not f.metadata.get("internal")  # set by the loader, not by the file
    }
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean `{prefix}{close[0]}`?)" if close else ""
            raise UserError(
                f"{source}: unknown key `{prefix}{key}`{hint}; known keys here: {', '.join(sorted(known))}"
            )
    kwargs: dict[str, Any] = {}
    for name, fld in known.items():
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], source, f"{prefix}{name}")
        elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
            raise UserError(f"{source}: missing required key `{prefix}{name}`")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, source: str | Path, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, source, key)
            except UserError as err:
                errors.append(str(err))
        raise UserError(
            errors[-1] if len(errors) == 1 else f"{source}: `{key}` has an invalid value {value!r}"
        )
    if dataclasses.is_dataclass(hint):
        return build(hint, value, source, prefix=f"{key}.")  # type: ignore[arg-type]
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise UserError(f"{source}: `{key}` must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{source}: `{key}` must be a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(vt, v, source, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"{source}: `{key}` must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{source}: `{key}` must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"{source}: `{key}` must be true or false, got {value!r}")
        return value
    if hint is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise UserError(f"{source}: `{key}` must be a string, got {value!r}")
        return str(value)
    if origin is typing.Literal:
        if value not in args:
            raise UserError(
                f"{source}: `{key}` must be one of {', '.join(map(str, args))}; got {value!r}"
            )
        return value
    return value


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain YAML-able data, dropping fields marked `internal`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_dict(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not f.metadata.get("internal")
        }
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def resolve_path(value: str, base: Path) -> Path:
    """A path from a config file: relative paths are relative to the file's own folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def resolve_db_url(url: str, base: Path) -> str:
    """Make `sqlite:///relative.db` relative to the config file's folder; other URLs unchanged.

    A plain path (no `scheme://`) is resolved too: for `storage:` it means an Optuna journal file.
    """
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str((base / url[len("sqlite:///") :]).resolve())
    if "://" not in url:
        return str(resolve_path(url, base).resolve())
    return url


# --------------------------------------------------------------------------- job file


@dataclass(frozen=True)
class LoraSpec:
    r: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "all-linear"
    """peft target modules: `all-linear` (the language model's linear layers; peft leaves the
    output head out) or a list of module names or suffixes (`q_proj`, `v_proj`, ...)."""
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
    transformers accepts (`eager`, `sdpa`, `flash_attention_2`)."""


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
    dialogue attends only to itself through a variable-length attention kernel). Not for
    M-RoPE models (Qwen2-VL style)."""
    pack_tokens: int = 0
    """Tokens per packed row (0: about `batch_size` dialogues' worth, at least the longest);
    with packing this, not `batch_size`, sets a step's memory."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass from the start: ~30% slower, much less memory.
    Off, a trial that runs out of GPU memory is redone with it (so it is used only when needed)."""
    liger: bool = False
    """Use Liger kernels on CUDA (`pip install 'ablate[gpu]'`); ignored on CPU."""
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
    kind: typing.Literal["train", "python", "sim"] = "train"
    """`train`: fine-tune and benchmark; `python`: call `target` instead (rehearse a sweep);
    `sim`: a built-in synthetic landscape (`ablate/sim.py`), no training."""
    metric: str = "overall_accuracy"
    direction: typing.Literal["maximize", "minimize"] = "maximize"
    target: str | None = None
    """For kind python: `module:function` taking (proportions, volume, seed) -> float."""
    landscape: str = "less_is_more"
    """For kind sim: less_is_more | peaked | harmful | synergy (see ablate/sim.py)."""
    landscape_seed: int = 0
    """For kind sim: draws the landscape's optimum and weights (same seed = same landscape)."""
    noise: float = 0.0
    """For kind sim: standard deviation of the Gaussian noise added per (mixture, seed)."""
    duration_s: float = 0.0
    """For kind sim: seconds each trial sleeps, like a fine-tune would take."""
    report_steps: int = 0
    """For kind sim: intermediate values reported during the trial (for `design.prune`)."""


@dataclass(frozen=True)
class DesignSpec:
    kind: typing.Literal[
        "grid", "lattice", "corners", "leave_one_out", "dirichlet", "random", "search"
    ] = "grid"
    """grid: volumes x balance x seeds; lattice: simplex lattice + centroid; corners: one task
    type each; leave_one_out: uniform over all types but one; dirichlet: a space-filling
    Dirichlet cover around `prior`; random: `n_trials` Dirichlet draws; search: Optuna."""
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
    sampler: typing.Literal["default", "tpe", "gp", "cmaes", "random", "qmc"] = "default"
    """search: Optuna sampler; `default` = centroid + maximin start, then a GP on sqrt(shares)
    (ablate/mixsampler.py)."""
    parameterization: typing.Literal["stick", "logu"] = "stick"
    """search: `stick` (k-1 coordinates, one per mixture) or `logu` (Optuna FAQ: k -log(u))."""
    search_volume: bool = False
    """search: also search the volume, log-uniform between min and max of `volumes`."""
    multi_objective: typing.Literal["none", "volume", "gpu_hours"] = "none"
    """search: also minimise volume or GPU-hours; the Pareto front is `study.best_trials`."""
    prune: bool = False
    """search: prune trials from intermediate values (Optuna MedianPruner)."""
    warm_start: typing.Literal[
        "none", "grid", "lattice", "corners", "leave_one_out", "dirichlet", "random"
    ] = "none"
    """search: enqueue this fixed design (built from the keys above) before searching."""
    n_startup: int | None = None
    """search: trials before the sampler models the results (sampler default when unset)."""


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
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    objective: ObjectiveSpec = field(default_factory=ObjectiveSpec)
    design: DesignSpec = field(default_factory=DesignSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    seed: int = 0
    """Seed of the design and sampler."""
    source: str = field(default="", metadata={"internal": True})
    """The file this job came from (set by `load_job`)."""

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


def load_job(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> JobSpec:
    """Read and check a job file; pool-dependent checks happen in `validate_job`."""
    data = read_yaml(path, overrides)
    job = build(JobSpec, data, path)
    job = dataclasses.replace(job, source=str(Path(path).resolve()))
    _check_job(job, str(path))
    return job


def _check_job(job: JobSpec, src: str) -> None:
    if not job.study.strip():
        raise UserError(f"{src}: `study` must be a non-empty name")
    if job.objective.kind == "train":
        for key in ("pool", "bench"):
            if getattr(job, key) is None:
                raise UserError(f"{src}: `{key}` is required when objective.kind is train")
        if isinstance(job.bench, BenchRef):
            if not 0 <= job.bench.heldout_of_pool < 1:
                raise UserError(
                    f"{src}: `bench.heldout_of_pool` must lie in [0, 1), for example 0.02; "
                    f"got {job.bench.heldout_of_pool}"
                )
            if job.bench.file is None and not job.bench.heldout_of_pool > 0:
                raise UserError(
                    f"{src}: `bench` needs a `file`, a `heldout_of_pool` share, or both"
                )
    if job.objective.kind == "python":
        if not job.objective.target or ":" not in job.objective.target:
            raise UserError(
                f"{src}: `objective.target` must be `module:function` for objective.kind python"
            )
        if not job.task_types and job.pool is None:
            raise UserError(
                f"{src}: list `task_types` (or give a `pool`) so the design knows what to mix"
            )
    d = job.design
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
    if job.objective.kind == "sim" and not job.task_types and job.pool is None:
        raise UserError(
            f"{src}: list `task_types` (or give a `pool`) so the design knows what to mix"
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
    n_types = len(job.task_types) or 1
    if not 0 <= d.min_share < 1 / n_types:
        raise UserError(
            f"{src}: `design.min_share` must lie in [0, 1/{n_types}) for {n_types} task types, "
            f"got {d.min_share}"
        )
    for t, m in d.max_share.items():
        if not 0 < m <= 1:
            raise UserError(f"{src}: `design.max_share.{t}` must lie in (0, 1], got {m}")
        if job.task_types and t not in job.task_types:
            raise UserError(
                f"{src}: `design.max_share` names {t!r}, which is not in `task_types` {list(job.task_types)}"
            )
    if isinstance(d.prior, str) and d.prior not in ("natural", "uniform"):
        raise UserError(
            f"{src}: `design.prior` must be natural, uniform or a mapping of task type -> share, got {d.prior!r}"
        )
    if d.search_volume and (len(d.volumes) < 2 or min(d.volumes) == max(d.volumes)):
        raise UserError(
            f"{src}: `design.search_volume` needs `design.volumes` with a smaller and a larger "
            f"value (the range searched), got {list(d.volumes)}"
        )
    if not job.objective.noise >= 0 or not job.objective.duration_s >= 0:
        raise UserError(f"{src}: `objective.noise` and `objective.duration_s` must be 0 or more")
    if job.objective.kind == "sim":
        from ablate.sim import LANDSCAPES

        if job.objective.landscape not in LANDSCAPES:
            raise UserError(
                f"{src}: `objective.landscape` {job.objective.landscape!r} is not built in; "
                f"choose one of {', '.join(LANDSCAPES)}"
            )
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


def job_task_types(job: JobSpec) -> list[str]:
    """The task types a job mixes: its `task_types`, or every label of the pool's taxonomy."""
    if job.task_types:
        return list(job.task_types)
    if job.pool_dir is None:
        raise UserError(f"{job.source}: list `task_types` or give a `pool`")
    from ablate.pool import open_pool

    return sorted(open_pool(job.pool_dir).manifest.labels.get(job.taxonomy, {}))


def validate_job(job: JobSpec) -> None:
    """Every design point must be suppliable by the pool: fail before any training."""
    if job.objective.kind != "train":
        return
    from ablate.mixture import validate
    from ablate.pool import open_pool
    from ablate.sweep import design_mixtures

    assert job.pool_dir is not None  # load_job requires it for kind train
    pool = open_pool(job.pool_dir)
    if job.taxonomy not in pool.manifest.labels:
        raise UserError(
            f"{job.source}: `taxonomy` {job.taxonomy!r} is not a label column of the pool {job.pool_dir}; "
            f"available: {', '.join(pool.manifest.labels)}"
        )
    missing = [t for t in job.task_types if t not in pool.manifest.labels[job.taxonomy]]
    if missing:
        raise UserError(
            f"{job.source}: `task_types` lists {', '.join(missing)}, which the pool's `{job.taxonomy}` lacks; "
            f"the pool has {', '.join(sorted(pool.manifest.labels[job.taxonomy]))}"
        )
    mixtures = design_mixtures(job, job_task_types(job))
    _check_design_volumes(job, mixtures, pool.manifest)
    for mixture in mixtures:
        validate(mixture, pool.manifest, source=f"{job.source} (design point {mixture.name})")
    if job.bench_file is not None and not job.bench_file.is_file():
        raise UserError(f"{job.source}: `bench` file {job.bench_file} does not exist")


def _check_design_volumes(job: JobSpec, mixtures: list[Any], manifest: Any) -> None:
    """Name the job's own keys when a design volume is more than the pool can supply.

    (A mixture file's message would suggest `max_repeat`, which a job file has no key for.)
    """
    from ablate.mixture import max_volume, resolve_proportions, rows_per_type, volume_rows

    counts = manifest.labels.get(job.taxonomy, {})
    short = []
    for m in mixtures:
        props = resolve_proportions(m, manifest)
        if any(p > 0 and not counts.get(t) for t, p in props.items()):
            continue  # a type the pool lacks: `validate` says so
        need = rows_per_type(props, volume_rows(m, manifest))
        over = [(t, n) for t, n in need.items() if n > counts.get(t, 0) * m.max_repeat]
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
        f"pool's `{job.taxonomy}` has {counts.get(label, 0):,}. Lower `design.volumes` to at "
        f"most {cap:,} (the largest volume every `design.balance` level can draw), or import "
        "a larger pool"
    )
