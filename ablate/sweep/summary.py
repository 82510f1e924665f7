"""What a sweep reports while it runs (`SweepProgress`) and when it ends (`SweepSummary`)."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from ablate.config import JobSpec
from ablate.mixture import Mixture


@dataclass
class SweepProgress:
    """A snapshot after each event of the sweep (counts are over the whole study)."""

    done: int
    running: int
    failed: int
    waiting: int
    total: int
    best_value: float | None = None
    best_trial: int | None = None
    last: str = ""
    """What just happened, e.g. `v200-b0.50-s1 -> 0.65 in 14.2s`."""
    pruned: int = 0
    """Trials stopped early by the pruner (part of `total`, neither done nor failed)."""


@dataclass
class Tally:
    """Counts over the whole study (done) and this run (failed, run), and the best trial."""

    done: int = 0
    failed: int = 0
    run: int = 0
    pruned: int = 0
    """Trials this run stopped early (a search with `prune: true`)."""
    warned: bool = False
    best_value: float | None = None
    best_trial: int | None = None
    best_attrs: dict[str, Any] = field(default_factory=dict)
    judge_failures: int = 0
    """Trials failed in a row because the judge was unavailable (see JUDGE_FAILURES_IN_A_ROW)."""

    def offer(
        self, direction: str, number: int, value: float | None, attrs: dict[str, Any]
    ) -> None:
        """Keep the trial if it is the best so far in `direction`."""
        if value is None:
            return
        better = (
            self.best_value is None
            or (direction == "maximize" and value > self.best_value)
            or (direction == "minimize" and value < self.best_value)
            # a tie goes to the earlier trial, as `ablate status` (Optuna's best_trial) has it
            or (value == self.best_value and number < (self.best_trial or 0))
        )
        if better:
            self.best_value, self.best_trial, self.best_attrs = float(value), number, dict(attrs)


def snapshot(tally: Tally, running: int, pending: int, last: str) -> SweepProgress:
    """A progress line's counts: the study's so far, `running` trials in flight, `pending` ones
    not started (enqueued, to retry, to ask)."""
    ended = tally.done + tally.failed + tally.pruned
    return SweepProgress(
        done=tally.done,
        running=running,
        failed=tally.failed,
        waiting=pending,
        total=ended + running + pending,
        pruned=tally.pruned,
        best_value=tally.best_value,
        best_trial=tally.best_trial,
        last=last,
    )


@dataclass
class SweepSummary:
    n_complete: int
    """COMPLETE trials in the study (including those of earlier runs)."""
    n_failed: int
    """Trials that failed during this run."""
    best_value: float | None
    best_trial: int | None
    best_mixture: Mixture | None
    wall_seconds: float
    n_run: int = 0
    """Trials that completed during this run."""
    n_pruned: int = 0
    """Trials the pruner stopped during this run."""
    parent_run_id: str = ""
    """The MLflow parent run of the sweep."""
    pareto_front: list[int] = field(default_factory=list)
    """Multi-objective search: the trial numbers on the Pareto front (`study.best_trials`)."""
    settings_id: str = ""
    """The id of the settings this run trained with (`ablate.study.settings`)."""
    notes: list[str] = field(default_factory=list)
    """What the driver said before running (an adopted or recorded change of settings)."""
    ladder: list[str] = field(default_factory=list)
    """A ladder design: a line per rung (done, running), the largest model's best mixture with
    its interval, and GPU-hours against the full grid on it (`ablate.sweep.ladder`)."""

    def line(self, study: str) -> str:
        """`sweep `S`: this run 20 complete, 1 failed; the study 36 complete, best ...`: what
        ran in this run, then the study's totals (a rerun of a finished study ran nothing)."""
        pruned = f", {self.n_pruned} pruned" if self.n_pruned else ""
        ran = (
            f"this run {self.n_run} complete, {self.n_failed} failed{pruned}"
            if self.n_run or self.n_failed or self.n_pruned
            else "nothing left to run"
        )
        best = (
            f"{self.best_value:.4g} (trial {self.best_trial}, {self.best_mixture.name})"
            if self.best_mixture
            else "-"
        )
        return (
            f"sweep `{study}`: {ran}; the study {self.n_complete} complete, best {best}; "
            f"{self.wall_seconds:.0f} s"
        )


def _value(v: float) -> str:
    """A score as `0.6512` or `1.0` (a bare `1` read as a count: `best 1 (trial 14)`)."""
    text = f"{v:.4g}"
    return text if any(c in text for c in ".en") else f"{text}.0"


def print_progress(p: SweepProgress) -> None:
    """Default progress printer: one line per finished trial."""
    best = f"{_value(p.best_value)} (trial {p.best_trial})" if p.best_value is not None else "-"
    width = len(str(p.total))
    pruned = f"  pruned {p.pruned}" if p.pruned else ""
    print(
        f"[{p.done + p.failed + p.pruned:>{width}}/{p.total}] done {p.done}  running {p.running}  "
        f"failed {p.failed}{pruned}  best {best}  last: {p.last}",
        flush=True,
    )


def unusable_metric(metric: str, value: object, metrics: dict[str, float]) -> str:
    """Why a trial's result gives no objective value (the trial's error)."""
    return (
        f"objective metric `{metric}` is missing or not finite in the trial's result "
        f"(got {value!r}; metrics: {sorted(metrics)})"
    )


def left_out_note(info: dict[str, Any]) -> str | None:
    """What a trial's model does to the data that every trial shares, said once a sweep: bench
    dialogues it could not score (too long for `train.max_length`, images for a text-only
    model), and images its chat template moved away from the text that names them."""
    notes = []
    if skipped := int(info.get("bench_skipped") or 0):
        reasons = "; ".join(map(str, (info.get("bench_skip_reasons") or [])[:2]))
        notes.append(
            f"{skipped} bench dialogue(s) cannot be scored with this model and are left out of "
            f"every trial's score ({reasons}); MLflow: info/bench_skipped"
        )
    if moved := int(info.get("images_moved_by_template") or 0):
        notes.append(
            f"the model's chat template puts a turn's images before its text (llava-hf's "
            f"LLaVA-1.5 and OneVision do), so in {moved} training dialogue(s) of the first trial text "
            "that sat before an image (`Image1: <image>`) is read after it; MLflow: "
            "info/images_moved_by_template"
        )
    return "warning: " + "; and ".join(notes) if notes else None


def metric_stop(job: JobSpec, name: str, metrics: dict[str, float]) -> str:
    """The sweep stops: its first finished trial lacks `objective.metric`, so every trial would."""
    return (
        f"sweep stopped: the first finished trial ({name}) has no metric "
        f"`{job.objective.metric}` (`objective.metric` of {job.source or 'the job'}), so every "
        f"trial would fail the same way; it reported {', '.join(sorted(metrics)) or 'nothing'}. "
        "Fix `objective.metric` (a new metric is a change of settings: start a new study with "
        "`--set study=NAME`, or record it with `--allow-changed-settings`)"
    )


def same_for_every_trial(job: JobSpec, error: str, done: int) -> str | None:
    """The sweep stops at its first trial when that failed for a cause every other trial
    shares (`train.max_length` cutting every bench answer: 18 of 18 trials failed the same way,
    one by one; review q#5); None for any other error, after a trial completed, or with
    `models:` (another model's tokenizer may need fewer tokens)."""
    if done or job.models or not re.match(r"UserError: train\.max_length \d+ cuts every ", error):
        return None
    return (
        f"sweep stopped at its first trial: {error.removeprefix('UserError: ')}; every trial "
        "would fail the same way"
    )


def best_mixture_mean(trials: list[Any], minimize: bool) -> tuple[str, float, int] | None:
    """The mixture whose COMPLETE trials have the best mean over their seeds: its name (seed
    left out, `v2000-b1.00`; `MODEL:` first for a job with `models:`), that mean and its seeds.
    What a report calls the best mixture, not the luckiest single seed (`best_value`)."""
    groups: dict[str, list[float]] = {}
    for t in trials:
        if t.state.name != "COMPLETE" or t.value is None or not math.isfinite(t.value):
            continue
        name = re.sub(r"-s\d+$", "", str(t.user_attrs.get("mixture_name", t.number)))
        model = t.user_attrs.get("model")
        groups.setdefault(f"{model}:{name}" if model else name, []).append(float(t.value))
    if not groups:
        return None
    sign = -1.0 if minimize else 1.0
    name = max(groups, key=lambda k: sign * statistics.fmean(groups[k]))
    return name, statistics.fmean(groups[name]), len(groups[name])
