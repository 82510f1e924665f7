"""What a study's trials were trained with: the settings that give a trial its meaning, their
fingerprint, and the check a rerun passes before any work is done.

    job_settings(job, task_types)   the settings, one flat mapping of dotted keys
    settings_id(settings)           12 hex digits of the sha256 of their canonical JSON
    check_settings(study, job, settings, allow) -> (SettingsLevel, note): refuse, adopt or record

Fingerprinted: `model` (a local folder by its resolved path, and `model.files`: its config and
weight files, so that the folder moved or copied elsewhere, as a project rsynced to a cluster,
is the same model once its old path is gone), `model.lora`, `train` (with `models:`, each
model's as `models.<name>.*`, with its `size`: a model added to the list extends the study, like
a new volume; a change to a listed model's settings is a change of settings), `bench` (its file's
contents and a hash of its data), `pool.fingerprint` (the pool manifest's, so any spelling of
the path to the same pool is the same pool), `pool.labels` (its rows' labels in the columns the
job draws by: a pool re-imported with other label rules keeps its fingerprint), `objective`, `taxonomy`, `task_types`, `within`
(when set), and `seed`
when `bench.heldout_of_pool` is set (it draws the held-out rows). The model, training and bench
keys only for an objective kind that trains (`ablate.objectives.objective_trains`: `train`, not
`sim` or `python`, whose trials never read them; with `models:`, each model's `model.path` and
`size` stay). A study recorded before this has those keys too: a key the job's settings lack is
not compared, so it resumes. Not fingerprinted, because
they leave a trial's meaning alone: the design (a study grows by more volumes, balance levels,
seeds or trials), `storage`, `tracking`, `resources`, `plugins`, and the keys that only change
speed or bookkeeping (`SPEED_KEYS`).

Study user attributes: `ablate.settings_id` (the settings a plain rerun must match) and
`ablate.settings` ({id: canonical JSON} of every settings its trials were trained with). Trial
user attributes: `settings_id`, and on trials of a change recorded with
`--allow-changed-settings`, `settings_changes` ({key: value} where they differ from the study's).
A trial without `settings_id` (a study from before ablate recorded settings, a proposal) was
trained with the study's settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.bench import load_bench
from ablate.config import JobSpec, model_job, resolve_path, to_dict
from ablate.design import SEARCH
from ablate.errors import UserError
from ablate.objectives import objective_trains
from ablate.pool import Pool, open_pool

#: Study user attributes (see the module doc).
STUDY_SETTINGS_ID = "ablate.settings_id"
STUDY_SETTINGS = "ablate.settings"
#: Trial user attributes (see the module doc).
TRIAL_SETTINGS_ID = "settings_id"
TRIAL_SETTINGS_CHANGES = "settings_changes"
#: Keys that change how fast or where a trial runs, not what it learns.
SPEED_KEYS = frozenset(
    {
        "model.trust_remote_code",
        "model.attn_implementation",
        "train.threads",
        "train.liger",
        "train.gradient_checkpointing",
        "train.checkpoint_dir",
        "train.checkpoint_every",
        "train.eval_every",
        "train.max_skipped",
        "objective.duration_s",
        "objective.report_steps",
        "bench.batch_size",
        "bench.source",
        "bench.judge.url",
        "bench.judge.api_key_env",
        "bench.judge.api_key_file",
        "bench.judge.timeout_s",
        "bench.judge.retries",
        "bench.judge.cache",
        "bench.judge.concurrency",
    }
)
#: Keys a study recorded before ablate fingerprinted them lacks: compared only when recorded.
COMPARED_WHEN_RECORDED = ("model.files", "search.task_order", "pool.labels")
#: The flag that records a change of settings as a factor of the study.
ALLOW_FLAG = "--allow-changed-settings"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one mapping of dotted keys (lists stay values)."""
    if not isinstance(data, dict) or (prefix and not data):
        return {prefix.rstrip("."): data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}{key}."))
    return out


def _spec_settings(job: JobSpec, trains: bool = True) -> dict[str, Any]:
    """The settings of the job's own sections (model, train, objective), less `SPEED_KEYS`; a
    job with `models:` has `models.<name>.<key>` for each model (its `model` keys, its `train`
    with its overrides, and its `size`) instead of `model.*` and `train.*`. An objective that
    does not train (`trains` False: sim, python) has no `model.*` and `train.*`; of each model
    of `models:` only its `model.path` (which model) and `size` (what sim scales by)."""
    objective = flatten({"objective": to_dict(job.objective)})
    if not job.models:
        return {**(_model_settings(job) if trains else {}), **_drop_speed(objective)}
    out = _drop_speed(objective)
    for m in job.models:
        one = _model_settings(model_job(job, m.name))
        one = {**(one if trains else {"model.path": one["model.path"]}), "size": m.size}
        out.update({f"models.{m.name}.{k}": v for k, v in one.items()})
    return out


def _model_settings(job: JobSpec) -> dict[str, Any]:
    """`model.*` (a local folder resolved) and `train.*`, less `SPEED_KEYS`."""
    flat = flatten({"model": to_dict(job.model), "train": to_dict(job.train)})
    local = Path(job.model.path).expanduser()
    local = local if local.is_absolute() else job.base_dir / local
    if local.exists():  # a local folder, however its path is spelled; else a hub id or name
        flat["model.path"] = str(local.resolve())
        flat["model.files"] = _model_files(local)
    return _drop_speed(flat)


#: Files of a model folder whose names and sizes say which weights it holds.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def _model_files(folder: Path) -> str:
    """12 hex digits of the sha256 of a model folder's `config.json` and the names and sizes
    of its weight files: stat calls only (hashing the weights of a 7B model would read 15 GB on
    every start). Two checkpoints of one run share these, so a changed path whose old folder
    still exists stays a change (`_moved_model`)."""
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for path in sorted(folder.iterdir()) if folder.is_dir() else [folder]:
        if path.suffix in WEIGHT_SUFFIXES and path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size};".encode())
    return digest.hexdigest()[:12]


def _drop_speed(flat: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flat.items() if k not in SPEED_KEYS}


def _bench_settings(job: JobSpec) -> dict[str, Any]:
    """The bench file's contents (its data as a hash) and the held-out share of the pool."""
    out: dict[str, Any] = {"bench.heldout_of_pool": job.heldout_fraction}
    if job.heldout_fraction:
        out["seed"] = job.seed  # draws the held-out rows
    path = job.bench_file
    if path is None or not path.is_file():
        return {**out, "bench": None}
    spec = flatten({"bench": to_dict(load_bench(path))})
    data = resolve_path(str(spec["bench.data"]), path.parent)
    spec["bench.data"] = (
        "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest()[:16]
        if data.is_file()
        else f"missing: {data}"
    )
    return {**out, **{k: v for k, v in spec.items() if k not in SPEED_KEYS}}


def job_settings(job: JobSpec, task_types: list[str]) -> dict[str, Any]:
    """The settings that give the job's trials their meaning (see the module doc)."""
    pool, labels = None, {}
    trains = objective_trains(job)
    if job.pool_dir is not None and (trains or job.pool_dir.is_dir()):
        opened = open_pool(job.pool_dir)
        pool = opened.manifest.fingerprint[:16]
        labels = {"pool.labels": _labels_hash(opened, job)}
    order = {"search.task_order": list(task_types)} if job.design.kind == SEARCH else {}
    return {
        **_spec_settings(job, trains),
        **(_bench_settings(job) if trains else {}),
        "pool.fingerprint": pool,
        **labels,
        "taxonomy": job.taxonomy,
        "task_types": sorted(task_types),
        **({"within": job.within} if job.within else {}),  # (absent: studies before it resume)
        **order,
    }


def _labels_hash(pool: Pool, job: JobSpec) -> str | None:
    """16 hex digits over the label of every row in the columns the job draws by (`taxonomy`
    and `within`'s): the pool's fingerprint covers the dialogues, not their labels, so a pool
    re-imported with other label rules had the same fingerprint and a study mixed trials drawn
    by different labels. None when the pool lacks the taxonomy (validation says so)."""
    inner = {
        str(n.get("taxonomy", "task_type")) for n in job.within.values() if isinstance(n, dict)
    }
    columns = [job.taxonomy, *sorted(inner)]
    h = hashlib.sha256()
    for column in columns:
        if column not in pool.manifest.labels:
            return None
        codes, names = pool.codes(column)
        h.update("\x1f".join([column, *names]).encode() + b"\n" + codes.astype("<i4").tobytes())
    return h.hexdigest()[:16]


def canonical(settings: dict[str, Any]) -> str:
    """The settings as canonical JSON (sorted keys, no spaces): what `settings_id` hashes."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def settings_id(settings: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(settings).encode()).hexdigest()[:12]


#: A key a recorded settings lacks (fingerprinted by a later version of ablate) had its default.
_DEFAULTS = {k: v for k, v in _spec_settings(JobSpec(study="-")).items() if k != "model.path"}
_UNRECORDED = "(not recorded)"
#: Keys the settings hold only when the job gives them (so that studies before them resume).
_SET_WHEN_GIVEN = ("within",)


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key -> (recorded value, current value) for every key whose value differs. A key the
    record lacks counts as its default; a key the current settings lack (no longer
    fingerprinted) is left out."""
    out = {}
    added = _added_models(recorded, current)
    known = _model_prefixes(recorded) | _model_prefixes(current)
    for key in sorted(current):
        if _owner(key, known) in added:
            continue  # a model added to `models:` extends the study, like a new volume
        if key.endswith(COMPARED_WHEN_RECORDED) and key not in recorded:
            continue  # recorded before ablate fingerprinted it (or by a fixed design): resume
        was = recorded[key] if key in recorded else _DEFAULTS.get(key, _UNRECORDED)
        if was != current[key] and not _moved_model(key, recorded, current):
            out[key] = (was, current[key])
    for key in _SET_WHEN_GIVEN:  # recorded, and no longer given: named (not only its hash)
        if key in recorded and key not in current:
            out[key] = (recorded[key], "(none)")
    return out


def _moved_model(key: str, recorded: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether a `model.path` that changed is the same local folder moved or copied: its old
    path gone, and the same `model.files` at the new one."""
    files = key.removesuffix("path") + "files"
    old = recorded.get(key)
    return (
        key.endswith("model.path")
        and files in recorded
        and recorded[files] == current.get(files)
        and isinstance(old, str)
        and not Path(old).expanduser().exists()
    )


def _added_models(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`models.<name>.` prefixes of the models in `current` that `recorded` does not have."""
    return sorted(_model_prefixes(current) - _model_prefixes(recorded))


def _model_prefixes(settings: dict[str, Any]) -> set[str]:
    """The `models.<name>.` prefix of every model the settings have (by its `model.path`)."""
    return {
        k.removesuffix("model.path")
        for k in settings
        if k.startswith("models.") and k.endswith(".model.path")
    }


def _owner(key: str, prefixes: set[str]) -> str | None:
    """The model prefix a key is of: the longest that starts it (`models.qwen2.` starts the
    keys of `models.qwen2.5.` too), None for a key of no model."""
    return max((p for p in prefixes if key.startswith(p)), key=len, default=None)


def show(value: Any) -> str:
    """A settings value as the message shows it (strings bare, the rest as JSON)."""
    return value if isinstance(value, str) else json.dumps(value)


def describe(diff: dict[str, tuple[Any, Any]], now: str = "this job has") -> str:
    """`train.lr: study has 0.005, this job has 0.001; ...`."""
    return "; ".join(f"{k}: study has {show(a)}, {now} {show(b)}" for k, (a, b) in diff.items())


@dataclass(frozen=True)
class SettingsLevel:
    """The settings this run's trials are trained with, as the study knows them."""

    id: str
    """Their id (`settings_id` of the trials this run enqueues, asks or runs)."""
    base: str
    """The study's settings id: what a trial without `settings_id` was trained with."""
    changes: dict[str, Any] = field(default_factory=dict)
    """Key -> this run's value, where it differs from the study's settings (empty when same)."""

    def attrs(self) -> dict[str, Any]:
        """The trial user attributes that say so."""
        changes = {TRIAL_SETTINGS_CHANGES: dict(self.changes)} if self.changes else {}
        return {TRIAL_SETTINGS_ID: self.id, **changes}

    def owns(self, attrs: dict[str, Any]) -> bool:
        """Whether a trial (by its user attributes) was, or is to be, trained with these."""
        return attrs.get(TRIAL_SETTINGS_ID, self.base) == self.id


def recorded_levels(study_attrs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{id: settings} of every settings the study recorded, its own first; {} for none."""
    base = study_attrs.get(STUDY_SETTINGS_ID)
    raw = study_attrs.get(STUDY_SETTINGS)
    if not base or not isinstance(raw, dict) or base not in raw:
        return {}
    levels = {str(base): json.loads(raw[base])}
    levels.update({str(k): json.loads(v) for k, v in raw.items() if k != base})
    return levels


def check_settings(
    study: Any, job: JobSpec, settings: dict[str, Any], allow: bool = False
) -> tuple[SettingsLevel, str | None]:
    """Match the job's settings against the study's before any work (the caller holds the
    driver lock): the settings level this run trains with, and a note to show, if any.

    A new (or empty) study records them; a study from before ablate recorded settings adopts
    them (with a note); a study that recorded them accepts a job whose settings equal any it
    recorded. Other settings are refused (a UserError naming each differing key with both
    values and the ways out), or with `allow` recorded as a new level (with a note).
    """
    mine = settings_id(settings)
    levels = recorded_levels(study.user_attrs)
    n_trials = len(study.get_trials(deepcopy=False))
    if not levels or not n_trials:
        _record(study, mine, {mine: settings}, base=mine)
        note = (
            f"study `{job.study}` has {n_trials} trial(s) from before ablate recorded the "
            f"settings trials are trained with; adopting this job's settings ({mine}) as theirs"
            if n_trials and not levels
            else None
        )
        return SettingsLevel(mine, mine), note
    base = next(iter(levels))
    for known, recorded in levels.items():
        if not differences(recorded, settings):
            added = _added_models(recorded, settings)
            if added:  # recorded, so that a later change of the new model's settings is seen
                new = _keys_of(settings, set(added))
                _record(study, known, {**levels, known: {**recorded, **new}}, base=base)
            return SettingsLevel(known, base, _changes(levels[base], settings)), None
    diff = differences(levels[base], settings)
    if taken := _take_untried(study, job, levels, settings, diff, n_trials):
        return taken
    if not allow:
        raise UserError(_refusal(job, n_trials, diff, mine))
    _record(study, mine, {**levels, mine: settings}, base=base)
    level = SettingsLevel(mine, base, _changes(levels[base], settings))
    note = (
        f"study `{job.study}`: recording changed settings as a factor ({ALLOW_FLAG}): "
        f"new trials carry settings_id {mine} ({describe(diff, 'they have')}); the study's own "
        f"settings stay {base}"
    )
    return level, note


def _take_untried(
    study: Any,
    job: JobSpec,
    levels: dict[str, dict[str, Any]],
    settings: dict[str, Any],
    diff: dict[str, tuple[Any, Any]],
    n_trials: int,
) -> tuple[SettingsLevel, str] | None:
    """Changed settings that no result was trained with, taken under the study's own id: a
    study with no finished trial takes them all; one whose changed keys are all of models
    with no finished trial takes those models' (`_untried_models`). None: a real change."""
    base = next(iter(levels))
    changed = describe(diff, "this job has")
    if not _finished_models(study):
        _record(study, base, {**levels, base: settings}, base=base)
        return SettingsLevel(base, base), (
            f"study `{job.study}`: its settings changed ({changed}); none of its {n_trials} "
            "trial(s) finished, so it takes this job's settings and retries its failed trials "
            "with them"
        )
    untried = _untried_models(study, levels[base], settings, diff)
    if not untried:
        return None
    # the fixed models' keys, and those of models added in the same run (recorded, so that a
    # later change of theirs is seen)
    fixed = _keys_of(settings, {*untried, *_added_models(levels[base], settings)})
    _record(study, base, {**levels, base: {**levels[base], **fixed}}, base=base)
    names = ", ".join(p.removeprefix("models.").removesuffix(".") for p in untried)
    return SettingsLevel(base, base), (  # (the record has them now: no change to carry)
        f"study `{job.study}`: the settings of model(s) {names} changed ({changed}); none of "
        "their trials finished, so the study takes the new settings for them and retries "
        "their failed trials with them"
    )


def _untried_models(
    study: Any, recorded: dict[str, Any], settings: dict[str, Any], diff: dict[str, Any]
) -> list[str]:
    """The `models.<name>.` prefixes of the changed keys, when every changed key is one model's
    and none of those models has a finished (complete or pruned) trial: their settings gave no
    result yet (a wrong `models[i].path` that failed every trial), so a fix changes nothing
    recorded. [] otherwise."""
    known = _model_prefixes(recorded) | _model_prefixes(settings)
    owners = {_owner(k, known) for k in diff}
    if not diff or None in owners:
        return []
    names = {str(p).removeprefix("models.").removesuffix(".") for p in owners}
    return [] if names & _finished_models(study) else sorted(str(p) for p in owners)


def _keys_of(settings: dict[str, Any], prefixes: set[str]) -> dict[str, Any]:
    """The settings keys of the models with these prefixes (by `_owner`, not by prefix)."""
    known = _model_prefixes(settings) | prefixes
    return {k: v for k, v in settings.items() if _owner(k, known) in prefixes}


def _finished_models(study: Any) -> set[str]:
    """The `model` attribute ("None" for a one-model job) of every complete or pruned trial."""
    return {
        str(t.user_attrs.get("model"))
        for t in study.get_trials(deepcopy=False)
        if t.state.name in ("COMPLETE", "PRUNED")
    }


def _changes(recorded: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    return {k: now for k, (_, now) in differences(recorded, settings).items()}


def _record(study: Any, mine: str, levels: dict[str, dict[str, Any]], base: str) -> None:
    study.set_user_attr(STUDY_SETTINGS, {k: canonical(v) for k, v in levels.items()})
    if study.user_attrs.get(STUDY_SETTINGS_ID) != base:
        study.set_user_attr(STUDY_SETTINGS_ID, base)


def _refusal(job: JobSpec, n_trials: int, diff: dict[str, tuple[Any, Any]], mine: str) -> str:
    src = job.source or "JOB.yaml"
    return (
        f"study `{job.study}` in {job.storage_shown} was trained with other settings than this "
        f"job: {describe(diff)}. Its {n_trials} trial(s) would not be comparable with new ones "
        "(the analysis would take them for seed replicates), so nothing was run. Either start "
        "a new study (a new `study:` name in the job, or `--set study=NAME`), or record the "
        f"change as a factor of this study: `ablate sweep {src} {ALLOW_FLAG}` with the same "
        f"`--set` overrides (its new trials carry settings_id {mine}, and the `settings` "
        "column of the trial table tells them apart), or undo the change to resume the study "
        "as it was."
    )
