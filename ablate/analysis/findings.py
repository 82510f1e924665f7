"""`analyse(df)`: everything the report states in words, computed once.

The cells' bootstrap intervals (`stats.cell_stats`) are the plots' error bars; the verdicts come
from the calibrated tests of `verdict` (seed noise pooled over the design's cells, simultaneous
bounds at a family-wise error `alpha`, 5% unless set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ablate.analysis.contrasts import arrangements, guard_needs, guard_seeds
from ablate.analysis.failures import Failures, failures
from ablate.analysis.load import proposed, to_come
from ablate.analysis.power import (
    GUARD_NOTE,
    GUARDED_SEEDS,
    NO_GUARD_NOTE,
    POWER,
    DesignSize,
    minimal_effect,
)
from ablate.analysis.stats import Cells, cell_stats
from ablate.analysis.tables import mixture_keys
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
from ablate.analysis.words import BINNED, WAIT, bal, next_seeds, plural
from ablate.errors import UserError


@dataclass
class Findings:
    """Everything the report states in words, computed once."""

    metric: str
    direction: str
    n_complete: int
    failures: Failures
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
    group: str = ""
    """Which model (or settings) these findings are of, in a study of several ("model big")."""
    searched: bool = False
    """A search study: no seed replicates, and `ablate plan` does not apply (`Design.searched`)."""
    scope: list[str] = field(default_factory=list)
    """What the report says before the verdict: how many models (or settings) the study has and
    which one the verdict, plots, proposals and surrogates are of."""
    to_come: int = 0
    """Trials still waiting or running: a report of a sweep under way (or stopped)."""

    @property
    def verdict(self) -> Status:
        return self.overall.status

    def headline(self) -> str:
        who = f"{self.group[:1].upper()}{self.group[1:]}: " if self.group else ""
        if self.searched:
            return f'{who}"Less is more" {self.verdict.upper()}: {self.overall.reason}.'
        n_hold = sum(r.status == "holds" for r in self.per_level)
        scope = self.scope_words() if self.per_level else ""
        levels = len(self.per_level)
        caveat = (
            f" (each level is its own test at {self.alpha:.0%}: with {levels} levels and no "
            "effect at all, one of them holds or does not hold by chance more often than that)"
            if levels > 1
            else ""
        )
        return (
            f'{who}"Less is more" {self.verdict.upper()} {scope}: {self.overall.reason}. '
            f"Per balance level it holds at {n_hold} of {levels}{caveat}."
        )

    def scope_words(self) -> str:
        """Which balance levels the overall test averaged over: `over all balance levels`,
        `over the balance levels completed at every volume (0.40, 1.00)`, `at balance 0.72
        only`; `at each balance level` when no overall test ran."""
        used = overall_levels(self.overall, self.per_level)
        if used is None or len(used) == len(self.per_level):
            return "over all balance levels"
        if len(used) == 1:
            return f"at balance {bal(used[0])} only (the one level completed at every volume)"
        listed = ", ".join(bal(b) for b in used)
        return f"over the balance levels completed at every volume ({listed})"

    def statements(self) -> list[str]:
        """Plain-words findings, most important first."""
        out = [self.headline()]
        if self.detectable:
            out.append(self.detectable)
        if not self.searched:  # (a search's levels all say the headline's reason)
            out += [
                f"Balance {bal(r.balance)}: {r.status}: {r.reason}."
                for r in self.per_level
                if r.balance is not None  # (always: a level's test)
            ]
        out += [b.describe(self.metric, self.cells.sign) for b in self.balance]
        if self.cells.table["n"].max() < 2:
            out.append(
                "Every mixture ran with one seed only: no interval can be drawn and no error bars "
                f"are shown; {next_seeds(1, self.searched)} to measure seed noise."
            )
        out += self.notes
        if self.method:
            out.append(self.method)
        return out


def guard_text(
    d: Design, alpha: float, factor: Literal["volume", "balance"], per_level: bool = False
) -> str:
    """Why the tests comparing levels of `factor` ran without the heavy-tail guard, and the
    seeds per mixture that would bring it in (`contrasts.Family.guard`). `per_level`: only
    the volume tests at each balance level did (one level's scores are shuffled there)."""
    within = 1 if factor == "volume" else 0  # the scores are shuffled within the other factor
    other = "balance level" if factor == "volume" else "volume"
    n = guard_seeds(d.cells, within, alpha) if not per_level else None
    more = f"; {n} seeds per mixture would bring it in" if n and not d.searched else ""
    if d.mixtures_per_cell > 1:  # (the shuffles stay within a mixture: `CellMeans.unit`)
        other += " and mixture"
    count = arrangements(d.cells, within)
    which = f"The {factor} comparisons"
    if per_level:  # the most a single level's test has (`Family.guard` counts its strata)
        levels = {k[1] for k in d.cells.keys}
        count = max(arrangements(d.cells, within, np.array([k[1] == b for k in d.cells.keys]))
                    for b in levels)  # fmt: skip
        which, other = "The volume comparisons at each balance level", "one balance level"
    within_what = other if per_level else f"each {other}"
    return (
        f"{which} ran without the heavy-tail guard: shuffling the scores within "
        f"{within_what} gives only {plural(count, 'distinct arrangement')}, "
        f"fewer than the {guard_needs(alpha):,} its permutation quantile needs at {alpha:.0%} "
        "(with fewer it is too coarse: its bound can sit at 0 and decide nothing), so their "
        "bounds are the multivariate t's alone: exact for normal seed noise, not guarded "
        f"against heavy tails{more}."
    )


def overall_levels(overall: LessIsMore, per_level: list[LessIsMore]) -> list[float] | None:
    """The balance levels the overall test averaged over (completed at every volume tested);
    None when no overall test ran."""
    if not overall.comparisons:
        return None
    return list(overall.levels) or [r.balance for r in per_level if r.balance is not None]


def method_text(d: Design, alpha: float) -> str:
    """The tests in one paragraph, with this study's numbers."""
    if d.searched:
        return (
            "How a search is read: its volumes and balances are binned into a few levels for the "
            "plots and tables, but a bin holds different mixtures, each run once, so no volume or "
            "balance test is run on the bins; the volume question is put to the surrogate "
            "fitted on every trial (its predicted score against volume at the best tried shares, "
            "within the tried volumes), and a grid follow-up with seeds can test it."
        )
    if d.noise.pooled_df == 0:
        noise = "no seed noise measured (one seed per mixture), so no test was run"
    else:
        noise = d.noise.describe()
    guard = (
        " Each quantile is the larger of the multivariate t's (exact for normal seed noise) and "
        "a permutation quantile (scores shuffled within each level of the other factor), so "
        "heavy-tailed noise does not inflate the error; with fewer than "
        f"{guard_needs(alpha):,} distinct arrangements to shuffle the permutation quantile is "
        "left out (it would be too coarse to decide anything) and the notes say so."
    )
    several = ""
    if d.mixtures_per_cell > 1:
        several = (
            f" A cell holds up to {d.mixtures_per_cell} mixtures (the design's balances, binned "
            "or equal), its mean is over them, each balance level keeps the same mixtures, each "
            "as often, at every volume, and the seed noise is pooled over replicates of the "
            "same mixture, not over a cell's different mixtures."
        )
    balance = (
        "Balance: not tested, its levels being bins of different random mixtures (see the notes)."
        if d.binned and d.mixtures_per_cell > 1
        else "Balance: the most minus the least balanced mixture at each volume, simultaneous "
        "two-sided intervals over the volumes."
    )
    return (
        f"How the verdicts are computed: a linear model over the {len(d.cells.keys)} completed "
        f"cells (volume x balance), {noise}.{several} Each smaller volume is compared with the largest, "
        "one-sided, with simultaneous lower bounds from the multivariate t (Dunnett), at each "
        "balance level and on scores averaged over the balance levels completed at every "
        'volume; "holds" when a lower bound is above 0 (under no volume effect, in at most '
        f'{alpha:.0%} of studies), "does not hold" when every smaller volume is below the '
        f"largest beyond seed noise (one-sided upper bounds below 0). {balance} Family-wise "
        f"error {alpha:.0%} per test.{guard}"
    )


def analyse(
    df: Any,
    metric: str | None = None,
    direction: str | None = None,
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
        cells = cell_stats(df, metric, direction)
    except UserError as err:
        if df.empty or (df["state"] == "COMPLETE").any():
            raise
        # only failed (or waiting, or running) trials: no verdict and nothing to plot
        advice = WAIT if to_come(df).any() else RETRY
        raise UserError(f'"less is more" cannot be decided: {err}; {advice}') from None
    design = study_design(df, metric, direction)
    overall, per_level = volume_verdicts(design, alpha)
    balance = balance_verdicts(design, alpha)
    failed = failures(df)
    pending = int(to_come(df).sum())
    notes = failed.describe() + design_notes(df, design, failed.trials > 0, pending > 0)
    if overall.guard is False:
        notes.append(guard_text(design, alpha, "volume"))
    elif any(r.guard is False for r in per_level):  # the overall test has enough arrangements
        notes.append(guard_text(design, alpha, "volume", per_level=True))
    if any(b.guard is False for b in balance):
        notes.append(guard_text(design, alpha, "balance"))
    return Findings(
        metric=label,
        direction=direction,
        n_complete=int((df["state"] == "COMPLETE").sum()),
        to_come=pending,
        failures=failed,
        cells=cells,
        overall=overall,
        per_level=per_level,
        balance=balance,
        notes=notes,
        alpha=alpha,
        method=method_text(design, alpha),
        detectable=detectable_text(design, alpha),
        group=str(df.attrs.get("group", "")),
        searched=design.searched,
    )


def proposals_note(df: Any, d: Design) -> str:
    """One line on the trials `ablate propose` added to a fixed design: how many, and where the
    report shows them (`stats.design_trials` leaves them out of the cells); '' when none."""
    extra = proposed(df)
    if d.searched or not extra.any() or extra.all():
        return ""
    rows = df[extra & df["volume"].notna()]
    done = int((rows["state"] == "COMPLETE").sum())
    return (
        f"{plural(len(rows), 'trial')} of {plural(mixture_keys(rows).nunique(), 'mixture')} "
        f"proposed by `ablate propose` ({done} completed) are not part of the design: they are "
        "left out of its volume x balance cells, its tests and its size above and of the plots "
        "by balance level, and shown in the Mixtures table (marked proposed), the surrogates, "
        "the Pareto, shares and history plots and trials.csv."
    )


def design_notes(df: Any, design: Design, failed: bool, pending: bool) -> list[str]:
    """What the design's cells leave out: cells with no score, balance tests of bins, trials
    left out to balance a level, trials `ablate propose` added."""
    notes = []
    if lost := design.lost_cells:
        notes.append(
            f"No completed trial with a score in {len(lost)} cell(s) of the design: "
            f"{design.describe_missing()}; the tests leave them out."
        )
    if design.binned and design.mixtures_per_cell > 1 and not design.searched:
        notes.append(f"{BINNED}.")
    if design.unbalanced:
        notes.append(unbalanced_note(design, failed, pending))
    if extra := proposals_note(df, design):
        notes.append(extra)
    return notes


def unbalanced_note(d: Design, failed: bool, pending: bool) -> str:
    """Why some completed trials are not in the cells (`replicates.balanced`), and what to do."""
    causes = [c for c, on in (("failed", failed), ("still to finish", pending)) if on]
    why = f"{' and '.join(causes)} trials left" if causes else "the study ran"
    advice = "".join(f"; {a}" for a, on in ((RETRY, failed), (WAIT, pending)) if on)
    return (
        f"{plural(d.unbalanced, 'completed trial')} left out of the volume x balance cells "
        "(not of the seed noise) so that each balance level holds the same mixtures, each as "
        f"often, at every volume: {why} some mixture with fewer seeds at one volume than at "
        f"another, and the cells compare like with like{advice}."
    )


def detectable_text(d: Design, alpha: float) -> str:
    """The minimal detectable effect of the study as run, next to the verdict (a "cannot be
    decided" means little about effects smaller than this): the design as tried, and the effect
    at its fewest completed seeds per cell when failures left some cell with fewer."""
    if d.searched or d.noise.pooled_df == 0 or len(d.volumes) < 2 or not d.cells.n.size:
        return ""
    if not d.noise.pooled_sd > 0:
        return ""  # every seed scored the same: no noise to size an effect against
    fewest = int(d.cells.n.min())
    mde = minimal_effect(
        DesignSize(len(d.volumes), len(d.balances), fewest), d.noise.pooled_sd, alpha
    )
    if mde is None:
        return ""
    planned = DesignSize(len(d.volumes), len(d.balances), max(d.seeds, fewest))
    done = int(d.cells.n.sum())
    ran = f", {done} completed" if done != planned.trials else ""
    if d.n_unrecorded:
        ran = (
            f", {done} completed with a score; {plural(d.n_unrecorded, 'completed trial')} "
            f"did not record `{d.metric}`"
        )
    worst = (
        f", computed for its fewest completed seeds in a cell ({fewest})"
        if fewest < planned.seeds
        else ""
    )
    plan = (
        "`ablate plan` gives the seeds a smaller effect needs"
        if not d.searched
        else "a grid follow-up (`ablate plan` sizes it) can test a smaller one"
    )
    note = f" ({GUARD_NOTE})" if fewest <= GUARDED_SEEDS else ""
    if fewest <= GUARDED_SEEDS and not planned.guarded(alpha):
        note = f" ({NO_GUARD_NOTE})"
    size = planned.describe()
    if d.mixtures_per_cell > 1:  # a cell's n is its mixtures' trials, all together
        size, ran, worst, plan = _several_mixtures(d, fewest)
        note = ""  # (the notes about seeds per mixture are a grid's: its cells are mixtures)
    return (
        f"With its seed noise (SD {d.noise.pooled_sd:.3g}) this design ({size}"
        f"{ran}) detects a volume effect of {mde:.3g} with {POWER:.0%} power{worst}; {plan}"
        f"{note}."
    )


def _several_mixtures(d: Design, fewest: int) -> tuple[str, str, str, str]:
    """`detectable_text`'s design, completed, fewest and advice for cells of several mixtures:
    their trials per cell differ with the mixtures a level holds (a lattice's corners: 3)."""
    most = int(d.cells.n.max())
    per = f"{fewest}" if fewest == most else f"{fewest} to {most}"
    cells, shape = len(d.cells.keys), len(d.volumes) * len(d.balances)
    some = f" ({cells} of its {shape} cells compared)" if cells < shape else ""
    size = (
        f"{plural(len(d.volumes), 'volume')} x {plural(len(d.balances), 'balance level')}{some}, "
        f"{per} trials per cell over its mixtures = {plural(int(d.cells.n.sum()), 'trial')}"
    )
    worst = f", computed for its fewest trials in a cell ({fewest})" if fewest < most else ""
    plan = "more seeds per mixture (`design.seeds`) shrink it"
    return size, "", worst, plan


def less_is_more(
    df: Any, metric: str = "value", direction: str | None = None, alpha: float = ALPHA
) -> tuple[LessIsMore, list[LessIsMore]]:
    """The overall "less is more" test and one per balance level of a trial table."""
    return volume_verdicts(study_design(df, metric, direction), alpha)


def balance_effects(
    df: Any, metric: str = "value", direction: str | None = None, alpha: float = ALPHA
) -> list[BalanceEffect]:
    """The balance effect at each volume of a trial table, simultaneous over the volumes."""
    return balance_verdicts(study_design(df, metric, direction), alpha)
