"""`ablate plan JOB.yaml [--effect X] [--noise SD | --pilot JOB_OR_STUDY]`: the seeds per mixture
a grid design needs to detect a volume effect of X with 80% power (`ablate.analysis.power`), from
the seed noise of a pilot study (pooled over the replicates of its mixtures, as the verdict
pools it; any fixed design with seeds: a grid, a lattice, a random design) or a given SD, and the
effect the current design can detect.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ablate.analysis.load import load
from ablate.analysis.power import (
    GUARD_NOTE,
    GUARDED_SEEDS,
    MAX_SEEDS,
    NO_GUARD_NOTE,
    POWER,
    DesignSize,
    minimal_effect,
    seeds_needed,
)
from ablate.analysis.verdict import study_design
from ablate.config import JobSpec
from ablate.errors import UserError
from ablate.plan import load_job

__all__ = ["design_size", "pilot_noise", "plan_text"]


def design_size(job: JobSpec) -> DesignSize:
    """The grid the job runs (volumes x balance levels x seeds)."""
    d = job.design
    if d.kind != "grid":
        raise UserError(
            f"{job.source or 'job'}: `ablate plan` sizes grid designs (volumes x balance x seeds), "
            f"and this job's `design.kind` is {d.kind}; plan with a grid of the volumes and "
            "balance levels to compare"
        )
    return DesignSize(len(d.volumes), len(d.balance), len(d.seeds))


def pilot_noise(job: JobSpec, pilot: str | None) -> tuple[float, str]:
    """(seed SD, where it comes from): a pilot job file, another study of this job's storage,
    or (no pilot) this job's own study."""
    if pilot is None:
        source = job
    elif Path(pilot).is_file():
        source = load_job(pilot)
    elif pilot.endswith((".yaml", ".yml")) or "/" in pilot:
        raise UserError(f"--pilot {pilot}: no such file (give a pilot job file, or a study name)")
    else:
        source = dataclasses.replace(job, study=pilot)
    if source.objective.metric != job.objective.metric:
        raise UserError(
            f"the pilot study `{source.study}` measures `{source.objective.metric}`, this job "
            f"`{job.objective.metric}`: its seed noise is on another scale; give a pilot of the "
            "same metric, or --noise SD"
        )
    try:
        df = load(source)
    except UserError as err:  # no study yet: plan is what runs before the sweep
        raise UserError(
            f"{err}. To plan before any sweep, give --noise SD (a guess of the seed SD) or "
            "--pilot PILOT.yaml (a small study with 2 seeds or more)"
        ) from None
    noise = study_design(df).noise
    if noise.pooled_df == 0:
        raise UserError(
            f"study `{source.study}` has no mixture run with two seeds or more, so its seed noise "
            "is unknown; give --noise SD, or a pilot study with `design.seeds: [0, 1]` or more"
        )
    return noise.pooled_sd, (
        f"study `{source.study}`: seed SD {noise.pooled_sd:.4g} pooled over the replicates of its "
        f"mixtures ({noise.pooled_df} df)"
    ) + uncertain_sd(noise.pooled_sd, noise.pooled_df)


#: A pilot SD from fewer degrees of freedom than this is said to be uncertain, with its bound.
FEW_DF = 10


def uncertain_sd(sd: float, df: int, level: float = 0.8) -> str:
    """For a pilot of few degrees of freedom: its seed SD's one-sided upper confidence bound
    (chi-square) to plan with. Planned from the point estimate, 1 df gave 51% power where it
    promised 80% (the SD came out 0.0054 against 0.03), and with 4 df 55% of plans fell short."""
    if df >= FEW_DF:
        return ""
    from scipy.stats import chi2

    upper = sd * (df / chi2.ppf(1 - level, df)) ** 0.5
    return (
        f"; from {df} df the SD is uncertain: its {level:.0%} upper bound is {upper:.4g}, "
        f"`--noise {upper:.3g}` plans with it (safer), or run a pilot with more seeds"
    )


def plan_text(
    job: JobSpec,
    effect: float | None = None,
    noise: float | None = None,
    pilot: str | None = None,
    alpha: float = 0.05,
) -> str:
    """What `ablate plan` prints."""
    size = design_size(job)
    if noise is not None and noise <= 0:
        raise UserError(f"--noise {noise}: the seed SD must be positive")
    if effect is not None and effect <= 0:
        raise UserError(f"--effect {effect}: the effect must be positive (in metric units)")
    sd, where = (noise, f"given: seed SD {noise:.4g}") if noise else pilot_noise(job, pilot)
    lines = [f"Seed noise: {where}.", f"Design: {size.describe()}."]
    test = f"{POWER:.0%} power, family-wise error {alpha:.0%}"
    mde = minimal_effect(size, sd, alpha)
    sizes = [size] if mde is not None else []  # the designs the lines below speak of
    if mde is None:
        lines.append(
            'The current design cannot test "less is more": it needs 2 or more volumes '
            "(`design.volumes`) and 2 or more seeds per mixture (`design.seeds`)."
        )
    else:
        lines.append(f"It detects a volume effect of {mde:.4g} ({mde / sd:.2f} seed SDs; {test}).")
    if effect is not None:
        n = seeds_needed(size, effect, sd, alpha)
        if n is None:
            lines.append(
                f"An effect of {effect:.4g} ({effect / sd:.2f} seed SDs) needs more than 50 seeds "
                "per mixture: too small for this design to see; add balance levels or accept a "
                "larger effect."
            )
        else:
            bigger = DesignSize(size.volumes, size.balances, n)
            lines.append(
                f"To detect {effect:.4g} ({effect / sd:.2f} seed SDs; {test}) it needs {n} seeds "
                f"per mixture: {bigger.describe()} (`design.seeds: {list(range(n))}`)."
            )
            sizes.append(bigger)
    lines += guard_notes(sizes, alpha)
    if len(job.models) > 1:  # each model's verdict is its own: the power above is per model
        k = len(job.models)
        trials = " and ".join(f"{k * s.trials:,}" for s in sizes) or f"{k * size.trials:,}"
        lines.append(
            f"Per model: the job runs every design point once for each of its {k} models "
            f"(`models:`), {trials} trials in all, and each model gets its own verdict."
        )
    return "\n".join(lines)


def guard_notes(sizes: list[DesignSize], alpha: float) -> list[str]:
    """What the verdict will do differently from this power for the designs `sizes`: no
    heavy-tail guard (too few arrangements of the scores), or a guard that costs some power."""
    bare = [s for s in sizes if not s.guarded(alpha)]
    if bare:
        n = next(
            (
                k
                for k in range(bare[0].seeds, MAX_SEEDS + 1)
                if dataclasses.replace(bare[0], seeds=k).guarded(alpha)
            ),
            None,
        )
        more = f"; {n} seeds per mixture bring the guard in" if n else ""
        seeds = " or ".join(sorted({str(s.seeds) for s in bare}))
        return [f"Note: with {seeds} seeds per mixture, {NO_GUARD_NOTE}{more}."]
    if any(s.seeds <= GUARDED_SEEDS for s in sizes):
        return [f"Note: {GUARD_NOTE}."]
    return []
