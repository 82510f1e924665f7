"""A ladder study's rungs in the report (`design.kind: ladder`): the lines `ablate status` and the
sweep's summary print (`ablate.sweep.ladder.ladder_lines`), and a plot of the rungs.

The plot has a column per rung (its model, smallest first) and a point per mixture at its mean
over seeds with the 95% t interval; a line joins a mixture's means on the rungs it reached, so
the promotions read left to right, and the largest model's best mixture is marked. What it
answers: did the mixtures the small model promoted stay good on the large one?
"""

from __future__ import annotations

from pathlib import Path

from ablate.analysis.plots import load_pyplot
from ablate.config import JobSpec
from ablate.design.kinds.ladder import Rung, ladder_models
from ablate.study import open_study
from ablate.sweep.ladder import finished_rungs, is_ladder, ladder_lines


def ladder_view(
    job: JobSpec, task_types: list[str], out: Path, label: str = "score"
) -> tuple[list[str], Path | None]:
    """The ladder's lines and `out` (the rung plot; None before a rung has finished); nothing for
    other designs."""
    if not is_ladder(job):
        return [], None
    study = open_study(job, create=False)
    lines = ladder_lines(job, study, task_types)
    rungs = finished_rungs(job, study, task_types)
    if not rungs:
        return lines, None
    return lines, plot_rungs(rungs, [m.name for m in ladder_models(job)], out, label)


def plot_rungs(rungs: list[Rung], models: list[str], out: Path, label: str) -> Path:
    """Each rung's mixtures at their mean (95% interval), a mixture's rungs joined by a line."""
    plt = load_pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 2.2 * len(models)), 4.2))
    paths: dict[str, list[tuple[int, float]]] = {}
    for rung in rungs:
        for r in rung.ranked:
            paths.setdefault(r.key, []).append((rung.index, r.mean))
            lo, hi = r.interval(noise=rung.noise)  # (mean, mean: no bar, no seed SD at all)
            kept = r.key in rung.promoted
            ax.errorbar(
                rung.index, r.mean, yerr=[[r.mean - lo], [hi - r.mean]], fmt="o", ms=4,
                color="C1" if kept else "C0", alpha=0.9 if kept else 0.45, capsize=2,
            )  # fmt: skip
    for points in paths.values():
        if len(points) > 1:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, color="C1", alpha=0.5, lw=1)
    last = rungs[-1]
    if last.index == len(models) - 1 and last.ranked:
        best = last.ranked[0]
        ax.plot([last.index], [best.mean], marker="*", ms=16, color="C3", ls="none",
                label=f"best on {models[-1]}: {best.name}")  # fmt: skip
        ax.legend(loc="best", fontsize=8)
    ax.set_xticks(range(len(models)), [f"rung {i}\n{m}" for i, m in enumerate(models)])
    ax.set_xlim(-0.5, len(models) - 0.5)
    ax.set_ylabel(f"mean {label} over seeds (95% interval)")
    ax.set_title("Ladder: orange = promoted to the next model")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
