"""Seeds by power: what a design can detect, and the seeds it needs to detect a given effect.

The effect is the one the overall "less is more" test looks for (`ablate.analysis.verdict`):
a smaller volume better than the largest by X, on scores averaged over the B balance levels.
With n seeds per mixture, V volumes and seed SD s, that comparison's standard error is
s * sqrt(2 / (n * B)), the pooled variance has V * B * (n - 1) degrees of freedom, and the test
rejects when t exceeds the one-sided Dunnett quantile q of V - 1 comparisons with a common
control (correlation 1/2 with equal n), at family-wise error alpha. Its power for an effect X is
taken as P(t' > q), t' noncentral t with noncentrality X / SE: the chance that the one truly
better volume clears q (other comparisons clearing it too would add power). The minimal
detectable effect (MDE) is the X with 80% power. This is the power of the multivariate-t test
alone, not a lower bound on the verdict's: the verdict's permutation guard for heavy tails
takes the larger of the two quantiles, and its variance check the more cautious of a pooled
and a per-volume bound, which with few seeds lowers the power a little even for normal noise.
Measured (3 x 3 grid, seed SD 0.02, the effect at one smaller volume, the MDE this module
gives): 76% of 1,200 studies with 2 seeds, 78% of 400 with 3 (`GUARD_NOTE`). Plan a seed more
when the pilot has 2-3 seeds or its noise looks heavy-tailed.

The guard takes part only where the scores have enough distinct arrangements within the
balance levels (`contrasts.guard_needs`: 1,000 at 5%; `DesignSize.guarded`): a smaller design
(2 volumes x 1 balance level x 2 seeds has 6) gets the multivariate-t bound alone, so the power
here is the verdict's for normal noise, and the plan says the bound is not guarded against
heavy tails (`NO_GUARD_NOTE`). Measured with the guard left out, at the MDE: about 70% to 79%
(300 to 800 studies each of 2 x 1 x 2, 2 x 1 x 5, 3 x 1 x 2, 3 x 1 x 3, 2 x 3 x 2 grids; the
variance check costs the rest), and the false-positive rate under t(3) noise 3.1% to 5.1%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ablate.analysis.contrasts import guard_needs, multinomial, quantile
from ablate.analysis.words import plural

__all__ = [
    "GUARDED_SEEDS",
    "GUARD_NOTE",
    "NO_GUARD_NOTE",
    "POWER",
    "DesignSize",
    "minimal_effect",
    "power",
    "seeds_needed",
]

#: The power a plan aims for.
POWER = 0.8
#: The most seeds per mixture a plan proposes.
MAX_SEEDS = 50
#: Below this many seeds per mixture the permutation guard costs measurable power.
GUARDED_SEEDS = 4
GUARD_NOTE = (
    "the power is the multivariate-t test's for normal seed noise; with 2-4 seeds per mixture "
    "the verdict's heavy-tail guard lowers it a little (measured on a 3 x 3 grid: 76% with 2 "
    "seeds, 78% with 3, 77% with 4, where this says 80%), so plan a seed more to be safe"
)
NO_GUARD_NOTE = (
    "the power is the multivariate-t test's for normal seed noise; with this few seeds the "
    "verdict has too few arrangements of the scores for its heavy-tail guard and uses the "
    "multivariate-t bound alone (not guarded against heavy-tailed noise), and its variance "
    "check lowers the power a little (measured about 70% to 79% where this says 80%), so plan a "
    "seed more to be safe"
)


@dataclass(frozen=True)
class DesignSize:
    """The shape of a grid design: volume levels, balance levels, seeds per mixture."""

    volumes: int
    balances: int
    seeds: int

    @property
    def trials(self) -> int:
        return self.volumes * self.balances * self.seeds

    def describe(self) -> str:
        return (
            f"{plural(self.volumes, 'volume')} x {plural(self.balances, 'balance level')} x "
            f"{plural(self.seeds, 'seed')} = {plural(self.trials, 'trial')}"
        )

    def arrangements(self) -> int:
        """Distinct arrangements of the scores within the balance levels (the overall test's
        heavy-tail guard shuffles those: `contrasts.arrangements`)."""
        return multinomial([self.seeds] * self.volumes) ** self.balances

    def guarded(self, alpha: float = 0.05) -> bool:
        """Whether the verdict's heavy-tail guard takes part in the overall test."""
        return self.arrangements() >= guard_needs(alpha)


def _critical(size: DesignSize, alpha: float) -> tuple[float, float, float]:
    """(q, df, SE per unit seed SD) of the overall test of this design."""
    df = size.volumes * size.balances * (size.seeds - 1)
    k = size.volumes - 1
    corr = np.full((k, k), 0.5)
    np.fill_diagonal(corr, 1.0)
    q = quantile(corr, df, alpha, two_sided=False)
    return q, df, math.sqrt(2 / (size.seeds * size.balances))


def power(size: DesignSize, effect: float, sd: float, alpha: float = 0.05) -> float:
    """The chance the overall test says "holds" when one smaller volume is better by `effect`."""
    from scipy.stats import nct

    if size.seeds < 2 or size.volumes < 2:
        return 0.0
    q, df, se = _critical(size, alpha)
    return float(nct.sf(q, df, effect / (sd * se)))


def minimal_effect(size: DesignSize, sd: float, alpha: float = 0.05) -> float | None:
    """The smallest effect detected with POWER (None: the design cannot test, one seed or one
    volume)."""
    from scipy.optimize import brentq
    from scipy.stats import nct

    if size.seeds < 2 or size.volumes < 2:
        return None
    q, df, se = _critical(size, alpha)
    ncp = brentq(lambda d: float(nct.sf(q, df, d)) - POWER, 0.0, 100.0, xtol=1e-6)
    return float(ncp * se * sd)


def seeds_needed(size: DesignSize, effect: float, sd: float, alpha: float = 0.05) -> int | None:
    """The fewest seeds per mixture (2 or more) that detect `effect` with POWER; None when even
    MAX_SEEDS do not."""
    for n in range(2, MAX_SEEDS + 1):
        if power(DesignSize(size.volumes, size.balances, n), effect, sd, alpha) >= POWER:
            return n
    return None
