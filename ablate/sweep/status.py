"""`ablate status JOB.yaml`: counts by state (per model; a ladder: per rung), the study's
settings (and whether the job's match), the LLM judge of a judged bench, the best trial, the
Pareto front, time left, and who drives the study."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ablate.bench.judge_http import judge_label
from ablate.config import JobSpec
from ablate.errors import UserError
from ablate.plan import job_task_types
from ablate.search import feasible
from ablate.study import (
    TRIAL_SETTINGS_ID,
    driver_holder,
    job_settings,
    open_study,
    recorded_levels,
)
from ablate.study.codec import STUDY_JUDGE
from ablate.study.lock import describe_holder
from ablate.study.settings import differences, show
from ablate.study.trial_rows import read_trial_rows
from ablate.sweep.ladder import is_ladder, ladder_lines


def study_status(job: JobSpec) -> str:
    """What `ablate status` prints."""
    from optuna.trial import TrialState

    study = open_study(job, create=False)
    trials = status_trials(job, study)
    counts = {
        s.name: 0
        for s in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL)
    }
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    lines = [f"study {job.study} ({job.storage_shown}): {len(trials)} trials"]
    lines.append("  " + "  ".join(f"{k.lower()} {v}" for k, v in counts.items()))
    lines += failure_lines(trials)
    lines += model_lines(job, trials)
    if is_ladder(job):
        lines += ladder_lines(job, study, job_task_types(job))
    lines.append(settings_line(job, study, trials))
    for label, nested in job.within.items():  # held at every point: shares below are outer
        if isinstance(nested, dict):
            lines.append(f"  within {label}: {nested.get('taxonomy', 'task_type')} "
                         f"{nested.get('proportions', 'natural')} (at every design point)")  # fmt: skip
    judge = study.user_attrs.get(STUDY_JUDGE)
    if isinstance(judge, dict):
        lines.append(f"  judge {judge_label(judge)}, output {judge.get('output')}")
    holder = driver_holder(job, study)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    complete = [t for t in complete if feasible(t)] or complete  # as the Pareto front counts
    if complete:
        pick = max if job.objective.direction == "maximize" else min
        best = pick(complete, key=lambda t: t.values[0])
        props = best.user_attrs.get("proportions", {})
        share = ", ".join(f"{k} {v:.3f}" for k, v in props.items())
        model = f"model {best.user_attrs['model']}, " if best.user_attrs.get("model") else ""
        lines.append(
            f"  best single trial {job.objective.metric} = {best.values[0]:.4g} (trial "
            f"{best.number}): {model}volume {best.user_attrs.get('volume')}, seed "
            f"{best.user_attrs.get('seed')}, proportions {{{share}}}"
        )
        lines += best_mean_line(job, complete, pick)
        if len(study.directions) > 1:
            front = sorted(t.number for t in study.best_trials)
            lines.append(
                f"  Pareto front ({job.objective.metric} vs {job.design.multi_objective}): "
                f"trials {', '.join(map(str, front))}"
            )
        if holder:  # with no driver running nothing progresses: no time left to promise
            lines += time_left_lines(job, complete, counts)
    lines.append(f"  driver: {describe_holder(holder)}" if holder else "  driver: none running")
    if not holder and counts["RUNNING"]:
        lines.append(
            f"  the {counts['RUNNING']} running trial(s) were left by a driver that is gone: "
            f"`{job.command('sweep')}` marks them failed (requeued) and runs them again"
        )
    return "\n".join(lines)


def time_left_lines(job: JobSpec, complete: list[Any], counts: dict[str, int]) -> list[str]:
    """The mean trial time so far and the time the waiting and running trials should take."""
    durations = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in complete
        if t.datetime_complete and t.datetime_start
    ]
    remaining = counts["WAITING"] + counts["RUNNING"]
    if not durations or not remaining:
        return []
    mean = sum(durations) / len(durations)
    parallel = counts["RUNNING"] or job.resources.max_in_flight
    left = mean * remaining / max(1, parallel)
    return [
        f"  mean trial {mean:.1f}s; {remaining} to go on {parallel} in flight: about {_human(left)} left"
    ]


def best_mean_line(job: JobSpec, complete: list[Any], pick: Any) -> list[str]:
    """The best mixture by its mean over seeds, when some mixture has several: one lucky seed
    is not the best mixture. The largest of several noisy means overstates its mixture (the
    winner's curse), and nothing tests it as the best, so the line says both. Of one model, as
    the report's main group: that of the latest completed trial (ranked across models, a
    ladder's line counted 21 mixtures where its own rung had 3)."""
    model = max(complete, key=lambda t: t.number).user_attrs.get("model", "")
    complete = [t for t in complete if t.user_attrs.get("model", "") == model]
    groups: dict[tuple[Any, ...], list[float]] = {}
    shown: dict[tuple[Any, ...], dict[str, float]] = {}  # the trials' own order of the types
    for t in complete:
        props = t.user_attrs.get("proportions") or {}
        key = (
            tuple(sorted((k, round(float(v), 6)) for k, v in props.items())),
            t.user_attrs.get("volume"),
            t.user_attrs.get("model", ""),
            t.user_attrs.get("settings_id", ""),
        )
        groups.setdefault(key, []).append(t.values[0])
        shown.setdefault(key, props)
    if max(len(v) for v in groups.values()) < 2:
        return []
    key, values = pick(groups.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))
    share = ", ".join(f"{k} {float(v):.3f}" for k, v in shown[key].items())
    model = f", model {key[2]}" if key[2] else ""
    return [
        f"  best mixture by its mean over seeds: {job.objective.metric} "
        f"{sum(values) / len(values):.4g} over {len(values)} seed(s): volume {key[1]}{model}, "
        f"proportions {{{share}}} (the best of {len(groups)} mixtures' means, so optimistic; "
        "`ablate report` shows which differences are beyond seed noise, with no test that this "
        "one is the best)"
    ]


#: `ablate status` shows the errors of this many of the latest failed trials.
LAST_FAILED = 3


def failure_lines(trials: list[Any]) -> list[str]:
    """What failed, counted as the report counts it (`ablate.analysis.failures.Failures`):
    failed trials and the design points they are at, requeued ones (left running by a driver
    that stopped: killed, Ctrl-C, SIGTERM; run again) and dropped ones (waiting when the job's
    design shrank: never run) apart, and the last few with their first error line."""
    failed = [t for t in trials if t.state.name == "FAIL"]
    if not failed:
        return []
    requeued = sum(bool(t.user_attrs.get("requeued")) for t in failed)
    dropped = sum(bool(t.user_attrs.get("dropped")) for t in failed)
    own = [t for t in failed if not (t.user_attrs.get("requeued") or t.user_attrs.get("dropped"))]
    points = {t.user_attrs.get("mixture_name", t.number) for t in own}
    parts = [f"{len(own)} trial(s) at {len(points)} design point(s)"] if own else []
    parts += [f"{requeued} requeued (a stopped driver's, run again)"] if requeued else []
    parts += [f"{dropped} dropped (outside the job's design, never run)"] if dropped else []
    lines = [f"  failed: {'; '.join(parts)}"]
    for t in sorted(own, key=lambda t: t.number)[-LAST_FAILED:]:
        error = str(t.user_attrs.get("error") or "no error recorded").splitlines()[0][:160]
        lines.append(f"    trial {t.number} {t.user_attrs.get('mixture_name', '')}: {error}")
    return lines


def model_lines(job: JobSpec, trials: list[Any]) -> list[str]:
    """Per model of a study across models (trials with a `model`): `model qwen-2b: complete 12
    running 2 waiting 4 fail 0; best score 0.81 (trial 7)`; none for a one-model study."""
    names = [m.name for m in job.models]
    names += sorted(
        {str(t.user_attrs["model"]) for t in trials if t.user_attrs.get("model")} - set(names)
    )
    lines = []
    pick = max if job.objective.direction == "maximize" else min
    for name in names:
        mine = [t for t in trials if t.user_attrs.get("model") == name]
        counts = Counter(t.state.name for t in mine)
        states = ("COMPLETE", "RUNNING", "WAITING", "FAIL")
        line = f"  model {name}: " + "  ".join(f"{k.lower()} {counts.get(k, 0)}" for k in states)
        done = [t for t in mine if t.state.name == "COMPLETE" and t.values]
        if done:
            best = pick(done, key=lambda t: t.values[0])
            line += f"; best {job.objective.metric} {best.values[0]:.4g} (trial {best.number})"
        lines.append(line)
    return lines


def status_trials(job: JobSpec, study: Any) -> list[Any]:
    """The study's trials as FrozenTrials (no parameters: status reads none), built from a few
    SQL queries (`read_trial_rows`) rather than Optuna's ORM: 3,000 trials on SQLite took
    2.8 of status's 3.6 CPU seconds through `get_trials`; through Optuna for what the queries
    do not read (several objectives, a journal file)."""
    found = read_trial_rows(job)
    if found is None:
        return study.get_trials(deepcopy=False)
    try:
        return _frozen_trials(found[0])
    except (KeyError, ValueError):  # a state or a trial Optuna would not have written
        return study.get_trials(deepcopy=False)


def _frozen_trials(rows: list[Any]) -> list[Any]:
    from optuna.trial import FrozenTrial, TrialState

    return [
        FrozenTrial(
            number=r.number,
            state=TrialState[r.state],
            value=r.value,
            datetime_start=r.datetime_start,
            datetime_complete=r.datetime_complete,
            params={},
            distributions={},
            user_attrs=r.user_attrs,
            system_attrs=r.system_attrs,
            intermediate_values={},
            trial_id=r.number,
        )
        for r in rows
    ]


def settings_line(job: JobSpec, study: Any, trials: list[Any]) -> str:
    """`settings 1a2b3c4d5e6f (18 trials); 9f8e7d6c5b4a train.lr=0.001 (9 trials); this job:
    same` (see `ablate.study.settings`)."""
    levels = recorded_levels(study.user_attrs)
    if not levels:
        return "  settings: not recorded yet (the next `ablate sweep` records this job's)"
    base = next(iter(levels))
    per = Counter(t.user_attrs.get(TRIAL_SETTINGS_ID, base) for t in trials)
    parts = [f"{base} ({per[base]} trials)"]
    for known, recorded in list(levels.items())[1:]:
        changed = " ".join(
            f"{k}={show(b)}" for k, (_, b) in differences(levels[base], recorded).items()
        )
        parts.append(f"{known} {changed} ({per[known]} trials)")
    try:
        mine = job_settings(job, job_task_types(job))
    except UserError:  # the pool or bench moved: the counts still show
        return "  settings " + "; ".join(parts)
    match = next((k for k, rec in levels.items() if not differences(rec, mine)), None)
    if match is None:
        this = "differs in " + ", ".join(differences(levels[base], mine))
    else:
        this = "same" if match == base else f"same as {match}"
    return "  settings " + "; ".join(parts) + f"; this job: {this}"


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
