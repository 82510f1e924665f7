"""Numbers in words, the same way on every line of the report: volumes, balance levels, gains
that say which way is better (for a loss, lower), and bounds printed with enough digits to show
their sign."""

from __future__ import annotations

import math


def vol(v: float) -> str:
    """`4,000 rows`, or for a share of the pool `0.25 of the pool`."""
    return f"{v:,.0f} rows" if v >= 1 else f"{v:g} of the pool"


def bal(b: float) -> str:
    """A balance level: `0.70`, or `0.993` where two decimals would not show it. A grid's levels
    are its balances to 3 decimals and a search's bins are labelled to 2, so no two levels ever
    print alike (two mixtures at 0.993 and 0.994 would both read `0.99`); `-` for none (NaN)."""
    if not math.isfinite(b):
        return "-"
    return f"{b:.2f}" if abs(b - round(b, 2)) < 5e-7 else f"{b:.3f}"


def signed(x: float, digits: int = 3) -> str:
    """`+0.012`; a number that would print as `+0.000` gets two significant digits instead
    (`+0.00036`), so a bound's sign is always readable."""
    if not math.isfinite(x):
        return f"{x:+}"
    if x != 0 and abs(x) < 0.5 * 10**-digits:
        return f"{x:+.2g}"
    return f"{x:+.{digits}f}"


def gain(better: float, metric: str, sign: float) -> str:
    """A difference in "better" units (positive: better) as words: `0.018 higher score
    (better)`, `0.102 lower loss (better)`, `0.010 higher loss (worse)`, `no different in
    loss`."""
    raw = sign * better  # in the metric's own units
    if raw == 0:  # (not "0.000 no different in score")
        return f"no different in {metric}"
    size = signed(abs(raw))[1:]
    way = "higher" if raw > 0 else "lower"
    verdict = " (better)" if better > 0 else " (worse)"
    return f"{size} {way} {metric}{verdict}"


#: The advice when trials failed (and only then).
RETRY = "`ablate sweep JOB.yaml` again retries failed trials"
#: The advice when a balance level's mixtures lack trials at some volume (`replicates.balanced`).
BALANCE = (
    "a balance level compares the same mixtures at every volume: each of its mixtures needs a "
    "completed trial at each (`ablate sweep JOB.yaml` again retries failed trials)"
)
#: Why balance levels that are bins of several mixtures get no balance test.
BINNED = (
    "Balance: the balance levels are bins of the design's mixtures (quartiles of their "
    "balances), and mixtures differ in more than balance, so the gap between two bins is no "
    "balance effect beyond seed noise and none is tested; the effects plot and the surrogates "
    "show how the score moves with each share"
)
#: The advice when trials are still waiting or running (a sweep under way, or stopped).
WAIT = (
    "the sweep has yet to finish them (`ablate status JOB.yaml` follows it; a stopped sweep "
    "resumes with `ablate sweep JOB.yaml`)"
)


def check_metric(metric: str) -> str:
    """The advice when completed trials did not record the metric: a rerun would not help."""
    return (
        f"check that the objective reports `{metric}` as a finite number (it is NaN or missing "
        "there), or analyse another metric (`--metric`)"
    )


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 balance level`, `3 balance levels`."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def lost_text(failed: int, unrecorded: int, pending: int, left: int, metric: str) -> str:
    """Why trials gave no score, in words: `3 did not complete`, `3 completed trials did not
    record `acc``, `2 still waiting or running`, `6 completed but left out ...`; '' when none
    were lost."""
    out = [f"{failed} did not complete"] if failed else []
    if pending:
        out.append(f"{pending} still waiting or running")
    if left:
        out.append(
            f"{plural(left, 'completed trial')} left out: their mixtures have no completed trial "
            "at another volume of the level"
        )
    if unrecorded:
        out.append(f"{plural(unrecorded, 'completed trial')} did not record `{metric}`")
    return ", ".join(out)


def next_seeds(seeds: int, searched: bool = False) -> str:
    """What to add to a design with `seeds` seeds per mixture: one seed more (at least 3), and
    where to find how many a given gap needs. A search runs each mixture once
    (`design.seeds[0]`) and `ablate plan` sizes grids only: it gets a grid follow-up instead."""
    if searched:
        return (
            "a search runs each mixture once, so its levels (bins of the searched trials) are "
            "not seed replicates; run a grid follow-up over the volumes and balance levels of "
            "interest (`design.kind: grid`, `design.seeds: [0, 1, 2]`; `ablate plan` sizes it), "
            "or let `ablate propose JOB.yaml` pick the next mixtures to try"
        )
    n = max(3, seeds + 1)
    return (
        f"add seeds to the design (`design.seeds: {list(range(n))}`, {n} per mixture; "
        "`ablate plan JOB.yaml --effect X` gives the seeds a gap of X needs) and run "
        "`ablate sweep` again"
    )


def searched_reason() -> str:
    """Why a search study gets no volume (or balance) test: its levels are bins of trials that
    each ran once, and one bin holds different mixtures."""
    return (
        "a search's bins cannot decide it: each volume x balance bin holds different mixtures "
        "(labelled by its trials' mean balance and mid volume), so a difference between bins is "
        f"no volume effect and their spread is no seed noise; {next_seeds(1, searched=True)}"
    )


__all__ = [
    "BALANCE",
    "BINNED",
    "RETRY",
    "WAIT",
    "bal",
    "check_metric",
    "gain",
    "lost_text",
    "next_seeds",
    "plural",
    "searched_reason",
    "signed",
    "vol",
]
