"""`ablate status JOB.yaml`: counts by state, the best trial, the Pareto front, time left, and
who drives the study."""

from __future__ import annotations

from ablate.config import JobSpec
from ablate.study import driver_holder, open_study
from ablate.study.lock import describe_holder


def study_status(job: JobSpec) -> str:
    """What `ablate status` prints."""
    from optuna.trial import TrialState

    study = open_study(job, create=False)
    trials = study.get_trials(deepcopy=False)
    counts = {
        s.name: 0
        for s in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL)
    }
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    lines = [f"study {job.study} ({job.storage_url}): {len(trials)} trials"]
    lines.append("  " + "  ".join(f"{k.lower()} {v}" for k, v in counts.items()))
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if complete:
        pick = max if job.objective.direction == "maximize" else min
        best = pick(complete, key=lambda t: t.values[0])
        props = best.user_attrs.get("proportions", {})
        share = ", ".join(f"{k} {v:.3f}" for k, v in props.items())
        lines.append(
            f"  best {job.objective.metric} = {best.values[0]:.4g} (trial {best.number}): "
            f"volume {best.user_attrs.get('volume')}, seed {best.user_attrs.get('seed')}, proportions {{{share}}}"
        )
        if len(study.directions) > 1:
            front = sorted(t.number for t in study.best_trials)
            lines.append(
                f"  Pareto front ({job.objective.metric} vs {job.design.multi_objective}): "
                f"trials {', '.join(map(str, front))}"
            )
        durations = [
            (t.datetime_complete - t.datetime_start).total_seconds()
            for t in complete
            if t.datetime_complete and t.datetime_start
        ]
        remaining = counts["WAITING"] + counts["RUNNING"]
        if durations and remaining:
            mean = sum(durations) / len(durations)
            parallel = counts["RUNNING"] or job.resources.max_in_flight
            left = mean * remaining / max(1, parallel)
            lines.append(
                f"  mean trial {mean:.1f}s; {remaining} to go on {parallel} in flight: about {_human(left)} left"
            )
    holder = driver_holder(job, study)
    lines.append(f"  driver: {describe_holder(holder)}" if holder else "  driver: none running")
    return "\n".join(lines)


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
