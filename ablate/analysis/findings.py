"""`analyse(df)`: everything the report states in words, computed once.

The cells' bootstrap intervals (`stats.cell_stats`) are the plots' error bars; the verdicts come
from the calibrated tests of `verdict` (seed noise pooled over the design's cells, simultaneous
bounds at a family-wise error `alpha`, 5% unless set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ablate.analysis.power import POWER, DesignSize, minimal_effect
from ablate.analysis.stats import N_BOOT, Cells, cell_stats
from ablate.analysis.verdict import (
    ALPHA,
    RETRY,
    BalanceEffect,
    Design,
    LessIsMore,
    Status,
    balance_verdicts,
    study_design,
    volume_verdicts,
)
from ablate.errors import UserError


@dataclass
class Findings:
    """Everything the report states in words, computed once."""

    metric: str
    direction: str
    n_complete: int
    n_failed: int
    cells: Cells
    overall: LessIsMore
    per_level: list[LessIsMore]
    balance: list[BalanceEffect]
    notes: list[str] = field(default_factory=list)
    alpha: float = ALPHA
    """The family-wise error level of each test."""
    method: str = ""
    """How the verdicts were computed, in one sentence (the report prints it)."""
    detectable: str = ""
    """The smallest volume effect this study's design detects (`ablate.analysis.power`)."""

    @property
    def verdict(self) -> Status:
        return self.overall.status

    def headline(self) -> str:
        n_hold = sum(r.status == "holds" for r in self.per_level)
        scope = "over all balance levels" if self.per_level else ""
        return (
            f'"Less is more" {self.verdict.upper()} {scope}: {self.overall.reason}. '
            f"Per balance level it holds at {n_hold} of {len(self.per_level)}."
        )

    def statements(self) -> list[str]:
        """Plain-words findings, most important first."""
        out = [self.headline()]
        if self.detectable:
            out.append(self.detectable)
        out += [f"Balance {r.balance:.2f}: {r.status}: {r.reason}." for r in self.per_level]
        out += [b.describe(self.metric, self.cells.sign) for b in self.balance]
        if self.cells.table["n"].max() < 2:
            out.append(
                "Every mixture ran with one seed only: no interval can be drawn and no error bars "
                "are shown; add seeds to the design (`design.seeds: [0, 1, 2]`) to measure seed noise."
            )
        out += self.notes
        if self.method:
            out.append(self.method)
        return out


def method_text(d: Design, alpha: float) -> str:
    """The tests in one paragraph, with this study's numbers."""
    if d.noise.pooled_df == 0:
        noise = "no seed noise measured (one seed per mixture), so no test was run"
    else:
        noise = d.noise.describe()
    guard = (
        " Each quantile is the larger of the multivariate t's (exact for normal seed noise) and "
        "a permutation quantile (scores shuffled within each level of the other factor), so "
        "heavy-tailed noise does not inflate the error."
    )
    return (
        f"How the verdicts are computed: a linear model over the {len(d.cells.keys)} completed "
        f"cells (volume x balance), {noise}. Each smaller volume is compared with the largest, "
        "one-sided, with simultaneous lower bounds from the multivariate t (Dunnett), at each "
        "balance level and on scores averaged over the balance levels completed at every "
        'volume; "holds" when a lower bound is above 0 (under no volume effect, in at most '
        f'{alpha:.0%} of studies), "does not hold" when every smaller volume is below the '
        "largest beyond seed noise (one-sided upper bounds below 0). Balance: the most minus the "
        "least balanced mixture at each volume, simultaneous two-sided intervals over the "
        f"volumes. Family-wise error {alpha:.0%} per test.{guard}"
    )


def analyse(
    df: Any,
    metric: str | None = None,
    direction: str | None = None,
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
) -> Findings:
    """Cells, the "less is more" tests and the balance effects of a study table.

    `alpha`: the family-wise error level of each test (5% by default)."""
    if not 0 < alpha < 0.5:
        raise UserError(f"alpha must be between 0 and 0.5 (a family-wise error level), not {alpha}")
    metric = metric or "value"
    direction = direction or df.attrs.get("direction", "maximize")
    label = df.attrs.get("metric", "value") if metric == "value" else metric
    try:
        cells = cell_stats(df, metric, direction, n_boot=n_boot)
    except UserError as err:
        if df.empty or (df["state"] == "COMPLETE").any():
            raise
        # only failed (or running) trials: no verdict and nothing to plot
        raise UserError(f'"less is more" cannot be decided: {err}; {RETRY}') from None
    design = study_design(df, metric, direction)
    overall, per_level = volume_verdicts(design, alpha)
    notes = []
    n_failed, n_rerun = failed_points(df)
    if n_failed:
        notes.append(
            f"{n_failed} design point(s) have only failed trials and are left out; "
            "`ablate sweep` again retries them."
        )
    if n_rerun:
        notes.append(
            f"{n_rerun} failed trial(s) (a dead driver's, or retried) ran again and completed."
        )
    if design.missing:
        notes.append(
            f"No completed trial in {len(design.missing)} cell(s) of the design: "
            f"{design.describe_missing()}; the tests leave them out."
        )
    return Findings(
        metric=label,
        direction=direction,
        n_complete=int((df["state"] == "COMPLETE").sum()),
        n_failed=n_failed,
        cells=cells,
        overall=overall,
        per_level=per_level,
        balance=balance_verdicts(design, alpha),
        notes=notes,
        alpha=alpha,
        method=method_text(design, alpha),
        detectable=detectable_text(design, alpha),
    )


def detectable_text(d: Design, alpha: float) -> str:
    """The minimal detectable effect of the study as run (its fewest seeds per cell), next to
    the verdict: a "cannot be decided" means little about effects smaller than this."""
    if d.noise.pooled_df == 0 or len(d.volumes) < 2 or not d.cells.n.size:
        return ""
    size = DesignSize(len(d.volumes), len(d.balances), int(d.cells.n.min()))
    mde = minimal_effect(size, d.noise.pooled_sd, alpha)
    if mde is None:
        return ""
    return (
        f"With its seed noise (SD {d.noise.pooled_sd:.3g}) this design ({size.describe()}) "
        f"detects a volume effect of {mde:.3g} with {POWER:.0%} power; `ablate plan` gives the "
        "seeds a smaller effect needs."
    )


def failed_points(df: Any) -> tuple[int, int]:
    """(design points with failed trials and no completed one, failed trials whose point
    completed since): a requeued trial's copy or a rerun is not a failure of the study."""
    failed = df[df["state"] == "FAIL"]
    if failed.empty or "mixture" not in df:
        return 0, 0
    done = set(df.loc[df["state"] == "COMPLETE", "mixture"])
    left = failed[~failed["mixture"].isin(done)]
    return int(left["mixture"].nunique()), len(failed) - len(left)
