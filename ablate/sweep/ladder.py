"""A ladder design in the sweep (`design.kind: ladder`, `ablate.design.kinds.ladder`): after the
dispatcher drains, the driver asks `advance_ladder` for the next rung and dispatches again,
until nothing more is promoted.

The study is the record: a rung is finished when each of its points has a COMPLETE or FAILED
trial and none WAITING or RUNNING; its promotion is then computed from those trials, written
to the study's user attribute `ladder_promoted` (rung -> mixture keys) and the next rung is
enqueued. A restarted driver re-enqueues every decided rung's missing points (a failed one is
retried, as in every sweep) and decides what a dead driver had not: a recorded promotion is
never recomputed, so the rungs above it stay those that ran. So a rung is decided only once
each of its points completed or failed in two runs (`decidable`): a rung whose trials all
failed once (a model folder not yet mounted, an OOM) was recorded as promoting nothing, and
the larger models never ran after the retries succeeded.
"""

from __future__ import annotations

from typing import Any

from ablate.config import JobSpec, model_job
from ablate.design.kinds.ladder import (
    LADDER,
    Rung,
    base_points,
    ladder_cost_lines,
    ladder_models,
    rank_rung,
    rung_points,
)
from ablate.design.points import design_key
from ablate.mixture import Mixture
from ablate.study import SettingsLevel, enqueue_design

#: Study user attribute: {"1": [mixture keys promoted to rung 1], "2": [...]}.
PROMOTED = "ladder_promoted"
#: Study user attribute: {"1": the `design.promote` rung 0's promotion was decided with, ...}.
PROMOTE_USED = "ladder_promote"
#: A point of a rung that failed in this many runs (not counting a dead driver's requeued
#: trials) is given up on, and the rung decided without it.
GIVE_UP_FAILS = 2


def is_ladder(job: JobSpec) -> bool:
    return job.design.kind == LADDER


def recorded(study: Any) -> dict[int, list[str]]:
    return {int(k): list(v) for k, v in (study.user_attrs.get(PROMOTED) or {}).items()}


def decided_rungs(
    job: JobSpec, study: Any, task_types: list[str]
) -> list[tuple[int, list[Mixture]]]:
    """Rung 0 and every rung whose promotion the study records, with their points."""
    promoted = recorded(study)
    out = [(0, rung_points(job, task_types, 0, None))]
    for r in range(1, len(job.models)):
        if r not in promoted:
            break
        out.append((r, rung_points(job, task_types, r, promoted[r])))
    return out


def trial_states(study: Any) -> dict[str, tuple[set[str], list[float], int]]:
    """Design key -> (the states of its trials, its completed values, its failed trials that
    were no dead driver's requeued ones)."""
    out: dict[str, tuple[set[str], list[float], int]] = {}
    for t in study.get_trials(deepcopy=False):
        key = t.user_attrs.get("design_key")
        if key is None:
            continue
        states, values, fails = out.get(key, (set(), [], 0))
        states.add(t.state.name)
        if t.state.name == "COMPLETE" and t.values:
            values.append(float(t.values[0]))
        own = t.state.name == "FAIL" and not t.user_attrs.get("requeued")
        out[key] = (states, values, fails + own)
    return out


def values_of(states: dict[str, tuple[set[str], list[float], int]]) -> dict[str, list[float]]:
    return {k: v for k, (_, v, _) in states.items()}


def retrying(points: list[Mixture], states: dict[str, tuple[set[str], list[float], int]]) -> int:
    """Points of a finished rung that failed and are not given up on (`GIVE_UP_FAILS`): the
    next `ablate sweep` retries them before the rung is decided."""
    empty: tuple[set[str], list[float], int] = (set(), [], 0)
    return sum(
        1
        for p in points
        if "COMPLETE" not in (got := states.get(design_key(p), empty))[0] and got[2] < GIVE_UP_FAILS
    )


def finished(points: list[Mixture], states: dict[str, tuple[set[str], list[float], int]]) -> bool:
    """Every point has a COMPLETE or FAIL trial and none waits or runs."""
    for p in points:
        seen = states.get(design_key(p), (set(), [], 0))[0]
        if not seen & {"COMPLETE", "FAIL"} or seen & {"WAITING", "RUNNING"}:
            return False
    return True


def finished_rungs(
    job: JobSpec,
    study: Any,
    task_types: list[str],
    states: dict[str, tuple[set[str], list[float], int]] | None = None,
) -> list[Rung]:
    """The finished rungs, ranked (the promotions they record, when recorded); `states`: the
    study's `trial_states`, when the caller has read them."""
    states = trial_states(study) if states is None else states
    values = values_of(states)
    promoted = recorded(study)
    rungs = []
    for r, points in decided_rungs(job, study, task_types):
        if not finished(points, states):
            break
        rung = rank_rung(job, r, points, values)
        if r + 1 in promoted:
            rung.promoted = promoted[r + 1]
        rungs.append(rung)
    return rungs


def advance_ladder(
    job: JobSpec,
    study: Any,
    task_types: list[str],
    level: SettingsLevel | None = None,
    restart: bool = False,
) -> int:
    """Enqueue what the ladder runs next; how many trials. `restart`: also every decided rung's
    missing points (a new driver). A finished top rung not yet promoted is ranked, its
    promotion recorded, and the next rung enqueued."""
    decided = decided_rungs(job, study, task_types)
    n = 0
    if restart:
        n += enqueue_design(study, [p for _, points in decided for p in points], level=level)
    top, points = decided[-1]
    states = trial_states(study)
    if top + 1 >= len(job.models) or not finished(points, states) or retrying(points, states):
        return n
    rung = rank_rung(job, top, points, values_of(states))
    promoted = {str(k): v for k, v in recorded(study).items()}
    used = dict(study.user_attrs.get(PROMOTE_USED) or {})
    study.set_user_attr(PROMOTE_USED, {**used, str(top + 1): job.design.promote})
    study.set_user_attr(PROMOTED, {**promoted, str(top + 1): rung.promoted})
    return n + enqueue_design(
        study, rung_points(job, task_types, top + 1, rung.promoted), level=level
    )


def ladder_lines(job: JobSpec, study: Any, task_types: list[str]) -> list[str]:
    """Where the ladder stands: a line per rung (done: its best and what it promoted; running;
    not started), then the largest model's best mixture with its interval, and GPU-hours."""
    models = ladder_models(job)
    states = trial_states(study)  # (one read of the study's trials for every line)
    rungs = finished_rungs(job, study, task_types, states)
    decided, promoted = decided_rungs(job, study, task_types), recorded(study)
    n_decided = len(decided)
    lines = []
    for r, model in enumerate(models):
        failed = retrying(decided[r][1], states) if r < n_decided and r + 1 not in promoted else 0
        if r < len(rungs) and r + 1 < len(models) and failed:
            line = (
                f"  rung {r} ({model.name}): {failed} point(s) failed: the next `ablate sweep` "
                "retries them, then ranks the rung and promotes"
            )
        elif r < len(rungs):
            rung = rungs[r]
            best = rung.ranked[0] if rung.ranked else None
            line = f"  rung {r} ({model.name}): done, {len(rung.ranked)} mixture(s) ranked"
            if best is not None:
                line += f", best {best.name} {best.mean:.4g}"
            if r + 1 < len(models):
                line += f"; {len(rung.promoted)} promoted to {models[r + 1].name}"
                line += changed_promote(job, study, r + 1)
            if rung.unranked:
                line += f"; not promoted, no completed seed: {', '.join(rung.unranked)}"
        elif r < n_decided:
            line = f"  rung {r} ({model.name}): running"
        else:
            line = f"  rung {r} ({model.name}): waits for rung {r - 1}"
        lines.append(line)
    if len(rungs) == len(models) and rungs[-1].ranked:
        best = rungs[-1].ranked[0]
        lines.append(
            f"  best on {models[-1].name}: {best.name} {job.objective.metric} {best.mean:.4g} "
            f"({best_interval(rungs[-1])})"
        )
    lines.append("  " + cost_line(job, study, task_types))
    return ["ladder:", *lines]


def changed_promote(job: JobSpec, study: Any, rung: int) -> str:
    """When `rung`'s promotion was decided with another `design.promote` than the job's now: a
    decided rung keeps what it promoted (the rungs above ran on it), and the line says so."""
    used = (study.user_attrs.get(PROMOTE_USED) or {}).get(str(rung))
    if used is None or abs(float(used) - job.design.promote) < 1e-12:
        return ""
    return (
        f" (decided with promote {float(used):g}; the job's {job.design.promote:g} applies to "
        "rungs decided from now on)"
    )


def best_interval(rung: Rung) -> str:
    """The top rung's best mixture: its 95% t interval from the seed SD pooled over the rung's
    mixtures (one model: one noise; a mixture's own 2 seeds alone give t(1) = 12.7), or no
    interval when no mixture has two seeds; and, when it was picked among several, that its
    mean is optimistic (the largest of several noisy means overstates its own truth)."""
    best, (sd, df) = rung.ranked[0], rung.noise
    seeds = f"{len(best.values)} seed(s)"
    if best.has_interval(rung.noise):
        lo, hi = best.interval(noise=rung.noise)
        pool = sum(len(r.values) > 1 for r in rung.ranked)
        text = (
            f"95% interval {lo:.4g} .. {hi:.4g}, {seeds}, seed SD {sd:.3g} pooled over the "
            f"rung's {pool} mixture(s) with 2+ seeds ({df} df)"
        )
    else:
        text = "no interval (one seed; no mixture of the rung has two, so no seed SD)"
    if len(rung.ranked) > 1:
        text += (
            f"; picked as the best of {len(rung.ranked)} mixtures on this model, so its mean "
            "is optimistic"
        )
    return text


def cost_line(job: JobSpec, study: Any, task_types: list[str]) -> str:
    """GPU-hours spent (trial seconds x the model's GPUs per trial) against the full grid on the
    largest model; trials on CPUs (no GPU per trial) count one device each, as device-hours
    (before, a CPU ladder said "0 GPU-hours against 0")."""
    gpus = {m.name: model_job(job, m.name).resources.gpus_per_trial or 0.0 for m in job.models}
    spent: dict[str, float] = {}
    target: list[float] = []
    largest = ladder_models(job)[-1].name
    unit = "GPU" if any(g > 0 for g in gpus.values()) else "device"
    for t in study.get_trials(deepcopy=False):
        seconds, model = t.user_attrs.get("seconds"), str(t.user_attrs.get("model") or "")
        if seconds is None or t.state.name not in ("COMPLETE", "FAIL"):
            continue
        g = float(t.user_attrs.get("gpus", gpus.get(model, 0.0)) or 0.0)
        g = g if unit == "GPU" else 1.0
        spent[model] = spent.get(model, 0.0) + float(seconds) * g
        if model == largest and t.state.name == "COMPLETE":
            target.append(float(seconds) * g)
    return ladder_cost_lines(job, len(base_points(job, task_types)), spent, target, unit)
