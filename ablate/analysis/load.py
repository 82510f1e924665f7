"""Read a study back as a tidy table: one row per trial, one column per quantity.

Columns: `trial`, `state`, `value` (the objective), `mixture`, `volume`, `balance`, `seed`,
`model` (the `models:` entry the trial trained; "" in a one-model study),
`settings` (the id of the settings the trial was trained with: trials of different `settings`
are not seed replicates of each other; see `ablate.study.settings`), `p/<type>` (one share per
task type), every metric the trial recorded (`overall_accuracy`, `accuracy/<domain>`, ...),
`seconds` (the trial's own compute time), `duration` (wall seconds from dispatch to result),
`gpus`, `gpu_seconds` (= seconds x GPUs per trial), `error`, `requeued` (a dead driver's trial,
marked FAIL and enqueued again: not a failure of its mixture), `dropped` (a waiting trial a
later run left out, its design point no longer in the job: marked FAIL, never run), for a bench
scored by an LLM
judge `judge` (`MODEL at HOST (rubric vN)`: the judge that scored the trial), and in a study
`ablate propose` added trials to, `proposed_by` (the surrogate that proposed the trial's
mixture; empty for the design's own trials; see `proposed`).

`df.attrs` carries `study`, `metric`, `direction`, `task_types` and `study_uid` (its MLflow parent
run's tag) so later calls need no job.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

from ablate.bench.judge_http import judge_label
from ablate.config import JobSpec, model_job
from ablate.errors import UserError, did_you_mean
from ablate.mixture import normalized_entropy
from ablate.plan import load_job
from ablate.study import STUDY_SETTINGS_ID, STUDY_UID, TRIAL_SETTINGS_ID, open_study
from ablate.study.trial_rows import TrialRow, read_trial_rows

#: Columns of `load`'s table that describe a trial rather than measure it.
NOT_METRICS = frozenset(
    ("trial", "state", "mixture", "error", "volume", "balance", "seed", "model", "settings",
     "requeued", "dropped", "seconds", "duration", "gpus", "gpu_seconds", "judge", "proposed_by")
)  # fmt: skip
#: The user attributes every ablate trial carries (see ablate.study.codec).
REQUIRED_ATTRS = ("proportions", "volume", "seed")


def _open(job: JobSpec) -> Any:
    try:
        return open_study(job, create=False)
    except UserError:
        raise
    except KeyError:
        raise UserError(
            f"{job.source or 'job'}: the storage {job.storage_shown} holds no study `{job.study}`; "
            "run `ablate sweep` first"
        ) from None
    except Exception as err:  # not an Optuna database, a newer schema, an unreachable server
        first = str(err).splitlines()[0][:300] if str(err) else ""
        raise UserError(
            f"{job.source or 'job'}: `storage` {job.storage_shown} cannot be read as an Optuna "
            f"storage ({type(err).__name__}: {first}); point `storage` at the database "
            "`ablate sweep` wrote"
        ) from None


#: What `load` reads of a trial (from an Optuna FrozenTrial or straight from the database).
_Trial = TrialRow


def _frozen(t: Any, base: dict[str, Any]) -> _Trial:
    """`base`: the study's `settings_id` (a trial without one was trained with the study's)."""
    attrs = {**base, **t.user_attrs}
    return _Trial(t.number, t.state.name, t.value, attrs, t.datetime_start, t.datetime_complete)


def _study_trials(study: Any) -> tuple[list[_Trial], str | None]:
    """The study's trials, and its own id (`STUDY_UID`, None before a sweep made one)."""
    settings = study.user_attrs.get(STUDY_SETTINGS_ID)
    base = {TRIAL_SETTINGS_ID: settings} if settings else {}
    trials = [_frozen(t, base) for t in study.get_trials(deepcopy=False)]
    return trials, study.user_attrs.get(STUDY_UID)


def as_job(job: JobSpec | str | Path) -> JobSpec:
    """A JobSpec as given, or read (and checked) from a job YAML path."""
    return job if isinstance(job, JobSpec) else load_job(job)


class _Source(NamedTuple):
    """The study `load` reads: its trials, and what the table's `attrs` and columns need."""

    name: str
    direction: str
    metric: str | None
    gpus_per_trial: float | None
    where: str
    trials: list[_Trial]
    model_gpus: dict[str, float | None] | None = None
    """A job with `models:`: model name -> its GPUs per trial (for `gpu_seconds`)."""
    uid: str | None = None
    """The study's own id (finds its MLflow parent run among studies of the same name)."""


def _source(job: JobSpec | str | Path | Any, metric: str | None, gpus: float | None) -> _Source:
    """The trials of an `optuna.Study`, or of a job's study (read straight from SQLite when the
    storage is a SQLite file, else through Optuna), with the job's defaults filled in."""
    optuna = sys.modules.get("optuna")  # not imported: `job` cannot be a Study
    if optuna is not None and isinstance(job, optuna.Study):
        minimize = job.direction == optuna.study.StudyDirection.MINIMIZE
        trials, uid = _study_trials(job)
        name = job.study_name
        direction = "minimize" if minimize else "maximize"
        return _Source(name, direction, metric, gpus, f"study `{name}`", trials, None, uid)
    job = as_job(job)
    found = read_trial_rows(job)
    trials, uid = found if found is not None else _study_trials(_open(job))
    return _Source(
        job.study,
        job.objective.direction,
        metric or job.objective.metric,
        job.resources.gpus_per_trial if gpus is None else gpus,
        f"study `{job.study}` in {job.storage_shown}",
        trials,
        {} if gpus is not None else _model_gpus(job),
        uid,
    )


def _model_gpus(job: JobSpec) -> dict[str, float | None]:
    return {m.name: model_job(job, m.name).resources.gpus_per_trial for m in job.models}


def _row(
    t: _Trial, gpus_per_trial: float | None, model_gpus: dict[str, float | None] | None = None
) -> dict[str, Any]:
    """One trial as a row of the table (see the module docstring for its columns)."""
    attrs = t.user_attrs
    seconds = attrs.get("seconds")
    model = str(attrs.get("model") or "")
    gpus = attrs.get("gpus", (model_gpus or {}).get(model, gpus_per_trial))
    duration = (
        (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete and t.datetime_start
        else None
    )
    row: dict[str, Any] = {
        "trial": t.number,
        "state": t.state,
        "value": t.value,
        "mixture": attrs.get("mixture_name"),
        "volume": attrs.get("volume"),
        "balance": attrs.get("balance"),
        "seed": attrs.get("seed"),
        "model": model,
        "settings": attrs.get(TRIAL_SETTINGS_ID, ""),
        # a dead driver's trial, failed and enqueued again: its copy is the trial that counts
        "requeued": bool(attrs.get("requeued")),
        # a waiting trial a later run's smaller design left out (never run, not a failure)
        "dropped": bool(attrs.get("dropped")),
        "seconds": seconds,
        "duration": duration,
        "gpus": gpus,
        "gpu_seconds": seconds * gpus if seconds is not None and gpus is not None else None,
    }
    for task_type, share in (attrs.get("proportions") or {}).items():
        row[f"p/{task_type}"] = float(share)
    row.update(attrs.get("metrics") or {})
    if isinstance(attrs.get("judge"), dict):
        row["judge"] = judge_label(attrs["judge"])
    if attrs.get("proposed_by"):  # enqueued by `ablate propose`
        row["proposed_by"] = str(attrs["proposed_by"])
    row["error"] = attrs.get("error") if t.state != "COMPLETE" else None
    return row


def _check_recorded(source: Any, trials: list[Any]) -> None:
    """The job's objective metric is one the study's completed trials recorded: else Optuna's
    value (another metric's) was analysed under its name (`--set objective.metric=...`)."""
    recorded: set[str] = set()
    for t in trials:
        if t.state == "COMPLETE" and isinstance(t.user_attrs.get("metrics"), dict):
            recorded |= set(t.user_attrs["metrics"])
    if source.metric and recorded and source.metric not in recorded:
        names = sorted(recorded)
        raise UserError(
            f"{source.where}: its completed trials recorded no `{source.metric}` (the job's "
            f"`objective.metric`){did_you_mean(source.metric, names)}; they recorded "
            f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''}: give the metric the "
            "study ran with, or analyse another with --metric"
        )


def load(
    job: JobSpec | str | Path | Any, metric: str | None = None, gpus_per_trial: float | None = None
) -> Any:
    """The study of a job (a JobSpec, a job YAML path or an `optuna.Study`) as a DataFrame.

    `metric` (default: the job's objective metric) only sets `df.attrs["metric"]`. GPU-seconds
    use the trial's recorded `gpus` attribute, else `gpus_per_trial`, else the job's
    `resources.gpus_per_trial`; when none is known `gpu_seconds` is empty (NaN), never guessed.
    """
    import pandas as pd

    source = _source(job, metric, gpus_per_trial)
    trials = source.trials
    foreign = [t for t in trials if not all(k in t.user_attrs for k in REQUIRED_ATTRS)]
    if trials and len(foreign) == len(trials):
        raise UserError(
            f"{source.where}: none of its {len(trials)} trials carries the ablate attributes "
            f"{list(REQUIRED_ATTRS)}: it was not made by `ablate sweep`; point the job's "
            "`storage` and `study` at an ablate study"
        )
    _check_recorded(source, trials)
    types: list[str] = []  # in the order the trials first list them
    for t in trials:
        types += [str(k) for k in t.user_attrs.get("proportions") or {} if str(k) not in types]
    rows = [_row(t, source.gpus_per_trial, source.model_gpus) for t in trials]
    columns = ["trial", "state", "value", "mixture", "volume", "balance", "seed"]
    df = pd.DataFrame(rows, columns=None if rows else columns)
    for col in ("value", "volume", "balance", "seconds", "duration", "gpus", "gpu_seconds"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for t_ in types:  # a type missing from a trial's proportions has share 0
        df[f"p/{t_}"] = df[f"p/{t_}"].fillna(0.0)
    if "proposed_by" in df:
        df["proposed_by"] = df["proposed_by"].fillna("")
    df.attrs.update(
        {
            "study": source.name,
            "metric": source.metric or "value",
            "direction": source.direction,
            "task_types": types,
            "study_uid": source.uid,
        }
    )
    return df


def completed(df: Any, metric: str = "value") -> Any:
    """The COMPLETE trials with a finite `metric`; a UserError says why there are none."""
    import numpy as np

    study = df.attrs.get("study", "the study")
    if df.empty:
        raise UserError(f"study `{study}` has no trials yet; run `ablate sweep JOB.yaml` first")
    done = df[df["state"] == "COMPLETE"]
    if done.empty:
        failed = df[df["state"] == "FAIL"]
        hint = ""
        if len(failed) and "error" in failed and failed["error"].notna().any():
            hint = f"; first error: {str(failed['error'].dropna().iloc[0]).splitlines()[0][:300]}"
        states = ", ".join(f"{k.lower()} {v}" for k, v in df["state"].value_counts().items())
        raise UserError(f"study `{study}` has no completed trials ({states}){hint}")
    if metric not in done.columns or done[metric].isna().all():
        known = sorted(
            c
            for c in done.columns
            if c not in NOT_METRICS and not c.startswith("p/") and done[c].notna().any()
        )
        raise UserError(
            f"metric `{metric}` is not recorded by any completed trial of study "
            f"`{study}`{did_you_mean(metric, known)}; choose one of: {', '.join(known)}"
        )
    done = done[np.isfinite(done[metric].astype(float))]
    return done.copy()


def proposed(df: Any) -> Any:
    """Per trial, whether `ablate propose` enqueued it (its `proposed_by`): a mixture a surrogate
    proposed, not one of the design's (all False in a study without proposals)."""
    import pandas as pd

    if "proposed_by" not in df:
        return pd.Series(False, index=df.index)
    return df["proposed_by"].fillna("").astype(str) != ""


def to_come(df: Any) -> Any:
    """Per trial, whether it is still waiting or running (a sweep under way, or stopped)."""
    return df["state"].isin(["WAITING", "RUNNING"])


def task_types(df: Any) -> list[str]:
    """The task types of the study, in the order the trials first listed them."""
    types = df.attrs.get("task_types")
    return list(types) if types else [c[2:] for c in df.columns if c.startswith("p/")]


def result_trial(
    proportions: dict[str, float],
    volume: int,
    seed: int,
    name: str,
    value: float,
    metrics: dict[str, float],
    seconds: float,
) -> Any:
    """A finished Optuna trial carrying the user attributes `load` reads, for results obtained
    outside a sweep (runs imported from elsewhere, synthetic studies in tests and benchmarks)."""
    import optuna

    return optuna.trial.create_trial(
        value=value,
        user_attrs={
            "proportions": proportions,
            "volume": volume,
            "seed": seed,
            "balance": normalized_entropy(proportions),
            "mixture_name": name,
            "metrics": metrics,
            "seconds": seconds,
        },
    )
