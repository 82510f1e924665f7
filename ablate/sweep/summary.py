"""What a sweep reports while it runs (`SweepProgress`) and when it ends (`SweepSummary`)."""

from __future__ import annotations

from dataclasses import dataclass, field

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


def print_progress(p: SweepProgress) -> None:
    """Default progress printer: one line per finished trial."""
    best = f"{p.best_value:.4g} (trial {p.best_trial})" if p.best_value is not None else "-"
    width = len(str(p.total))
    print(
        f"[{p.done + p.failed:>{width}}/{p.total}] done {p.done}  running {p.running}  failed {p.failed}  "
        f"best {best}  last: {p.last}",
        flush=True,
    )
