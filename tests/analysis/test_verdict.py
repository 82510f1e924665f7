"""The calibrated "less is more" test and balance test (ablate.analysis.verdict, .contrasts).

Trial tables are built by hand (no storage): a 3 x 3 grid (volumes x balance levels) with seeded
seed noise, so every number below is known in advance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from ablate.analysis import Design, analyse, balance_verdicts, study_design, volume_verdicts
from ablate.analysis.contrasts import CellMeans, bartlett, family, noise, quantile
from ablate.errors import UserError

VOLUMES = (1000, 5000, 20000)
BALANCES = (0.3, 0.7, 1.0)


def grid(
    rng: np.random.Generator,
    seeds: int = 2,
    effect: float = 0.0,
    sd: float = 1.0,
    failed: tuple[tuple[float, float, int], ...] = (),
) -> tuple[list[float], list[float], list[float], list[bool]]:
    """Columns of a 3 x 3 grid study; `effect` added at 5,000 rows; (volume, balance, k) in
    `failed`: the first k seeds of that cell failed."""
    vol, bal, y, done = [], [], [], []
    lost = {(v, b): k for v, b, k in failed}
    for v in VOLUMES:
        for b in BALANCES:
            for s in range(seeds):
                vol.append(float(v))
                bal.append(b)
                y.append((effect if v == 5000 else 0.0) + rng.normal(0, sd))
                done.append(s >= lost.get((v, b), 0))
    return vol, bal, y, done


def table(cols: tuple[list[float], list[float], list[float], list[bool]]) -> Any:
    import pandas as pd

    vol, bal, y, done = cols
    df = pd.DataFrame(
        {
            "state": ["COMPLETE" if d else "FAIL" for d in done],
            "volume": vol,
            "balance": bal,
            "seed": list(range(len(y))),
            "value": [v if d else math.nan for v, d in zip(y, done, strict=True)],
        }
    )
    df.attrs.update(metric="score", direction="maximize", study="sim")
    return df


def test_seed_variance_is_pooled_over_all_cells() -> None:
    vol, bal, y, done = grid(np.random.default_rng(0), seeds=2)
    d = Design.of(vol, bal, y, done)
    assert d.noise.pooled and d.noise.pooled_df == 9  # 18 trials - 9 cells
    pairs = np.array(y).reshape(9, 2)
    s2 = ((pairs - pairs.mean(axis=1, keepdims=True)) ** 2).sum() / 9
    assert d.noise.pooled_sd == pytest.approx(math.sqrt(s2))
    # unbalanced seeds: both seeds lost in one cell, 1 in another -> 15 trials in 8 cells, 7 df
    cols = grid(np.random.default_rng(0), seeds=2, failed=((1000, 0.3, 2), (5000, 1.0, 1)))
    d = Design.of(*cols)
    assert d.noise.pooled_df == 15 - 8 and len(d.cells.keys) == 8
    assert d.missing == {(1000.0, 0.3): 2}


def test_dunnett_bounds_equal_scipy_for_one_balance_level_and_equal_n() -> None:
    from scipy.stats import dunnett

    rng = np.random.default_rng(4)
    samples = {v: rng.normal(0, 1, 4) + (0.8 if v == 5000 else 0.0) for v in VOLUMES}
    cells = CellMeans.of(
        np.repeat(VOLUMES, 4), np.full(12, 1.0), np.concatenate(list(samples.values()))
    )
    w = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0]])  # 1,000 and 5,000 against 20,000
    fam = family(w, cells, noise(cells))  # no permutation guard: the textbook test
    low, q = fam.lower_bounds(0.05)
    res = dunnett(samples[1000], samples[5000], control=samples[20000], alternative="greater")
    ref = res.confidence_interval(0.95).low
    assert fam.df.tolist() == [9.0, 9.0] and fam.corr[0, 1] == pytest.approx(0.5)
    assert low == pytest.approx(ref, abs=0.01 * fam.se[0])
    assert res.statistic == pytest.approx(fam.estimate / fam.se)
    # the one-sided quantile for two comparisons with a control, 9 df (Dunnett's table: 2.18)
    assert q == pytest.approx(2.18, abs=0.01)
    assert quantile(np.eye(1), 9, 0.05, two_sided=False) == pytest.approx(1.833, abs=1e-3)


def test_bartlett_equals_scipy_when_each_volume_is_one_cell() -> None:
    from scipy.stats import bartlett as scipy_bartlett

    rng = np.random.default_rng(2)
    groups = [rng.normal(0, s, 6) for s in (1.0, 1.5, 3.0)]
    var = np.array([g.var(ddof=1) for g in groups])
    assert bartlett(var, np.full(3, 5.0)) == pytest.approx(scipy_bartlett(*groups).pvalue)


def test_null_studies_hold_at_most_alpha_and_effects_are_found() -> None:
    rng = np.random.default_rng(14)
    holds = [volume_verdicts(Design.of(*grid(rng)))[0].status == "holds" for _ in range(300)]
    # exact level 5% for normal noise: 300 studies give 15 on average, 25 is 2.7 SDs above
    assert sum(holds) <= 25
    power = [volume_verdicts(Design.of(*grid(rng, seeds=3, effect=3.0)))[0] for _ in range(40)]
    assert sum(r.status == "holds" for r in power) >= 38
    assert all(r.best_volume == 5000 for r in power if r.status == "holds")


def test_verdict_fields_are_the_bounds_the_test_uses() -> None:
    # the variance check off: the pooled formulas (this draw's Bartlett p is 0.09)
    d = Design.of(*grid(np.random.default_rng(1), seeds=3, effect=3.0), variance_check=0.0)
    assert d.noise.pooled and d.noise.check_p == pytest.approx(0.09, abs=0.01)
    overall, per_level = volume_verdicts(d)
    assert overall.status == "holds" and overall.best_volume == 5000
    assert overall.largest_volume == 20000 and overall.alpha == 0.05 and overall.df == 18
    assert [c.volume for c in overall.comparisons] == [1000, 5000]
    for c in overall.comparisons:
        # averaged over 3 balance levels of 3 seeds: se = s * sqrt(2 / 9)
        assert c.se == pytest.approx(d.noise.pooled_sd * math.sqrt(2 / 9))
        assert c.low == pytest.approx(c.effect - overall.quantile * c.se)  # type: ignore[operator]
    assert overall.low == max(c.low for c in overall.comparisons) > 0
    assert "simultaneous 95% lower bound over 2 smaller volumes" in overall.reason
    assert len(per_level) == 3 and all(r.balance in BALANCES for r in per_level)


def test_more_is_better_does_not_hold_and_noise_cannot_be_decided() -> None:
    rng = np.random.default_rng(3)
    vol, bal, y, done = grid(rng, seeds=3, sd=0.1)
    better = [v + math.log(x / 1000) for v, x in zip(y, vol, strict=True)]
    overall, _ = volume_verdicts(Design.of(vol, bal, better, done))
    assert overall.status == "does not hold"
    assert all(c.high < 0 for c in overall.comparisons)
    overall, _ = volume_verdicts(Design.of(vol, bal, y, done))  # no effect, sd 0.1
    assert overall.status == "cannot be decided"
    assert overall.low is not None and overall.low < 0 < overall.high  # type: ignore[operator]


def test_one_seed_cannot_be_decided_and_names_design_seeds() -> None:
    d = Design.of(*grid(np.random.default_rng(0), seeds=1, effect=5.0))
    overall, per_level = volume_verdicts(d)
    for r in [overall, *per_level]:
        assert r.status == "cannot be decided" and r.low is None and r.effect is None
        assert "`design.seeds" in r.reason and "no interval can be drawn" in r.reason
    assert all(b.low is None for b in balance_verdicts(d))


def test_one_volume_and_only_failed_trials_cannot_be_decided() -> None:
    vol, bal, y, done = grid(np.random.default_rng(0))
    one = [i for i, v in enumerate(vol) if v == 5000]
    d = Design.of(*([c[i] for i in one] for c in (vol, bal, y, done)))
    overall, _ = volume_verdicts(d)
    assert overall.status == "cannot be decided"
    assert "only one volume was tested" in overall.reason and "`design.volumes`" in overall.reason
    failed = Design.of(vol, bal, y, [False] * len(y))
    overall, _ = volume_verdicts(failed)
    assert overall.status == "cannot be decided" and "no trial completed" in overall.reason
    with pytest.raises(UserError, match=r'"less is more" cannot be decided: .*no completed'):
        analyse(table((vol, bal, y, [False] * len(y))))
    # every trial of the two smaller volumes failed: one volume left
    lost = [v == 20000 for v in vol]
    overall, _ = volume_verdicts(Design.of(vol, bal, y, lost))
    assert "only one volume has completed trials (20,000 rows)" in overall.reason


def test_missing_cells_name_the_control_and_leave_levels_out() -> None:
    cols = grid(np.random.default_rng(5), seeds=3, effect=3.0, failed=((20000, 0.3, 3),))
    f = analyse(table(cols))
    at = {r.balance: r for r in f.per_level}
    assert at[0.3].status == "cannot be decided"
    assert "the control is missing" in at[0.3].reason and "20,000 rows" in at[0.3].reason
    assert at[0.7].status == at[1.0].status == "holds"
    # overall: averaged over the two levels completed at every volume, and says so
    assert f.verdict == "holds" and "left out of this test: balance 0.30" in f.overall.reason
    # 24 trials in 8 cells: 16 df; two levels of 3 seeds per volume: se = s * sqrt(1 / 3)
    assert f.overall.df == 16
    d = study_design(table(cols))
    assert f.overall.comparisons[1].se == pytest.approx(d.noise.pooled_sd / math.sqrt(3))
    assert any("20,000 rows at balance 0.30 (3 did not complete)" in n for n in f.notes)
    # the balance test at 20,000 rows compares the levels that completed there (1.0 vs 0.7)
    b20 = next(b for b in f.balance if b.volume == 20000)
    assert (b20.most, b20.least) == (1.0, 0.7) and b20.tests == 3


def test_a_cell_never_run_is_named_with_what_to_add() -> None:
    vol, bal, y, done = grid(np.random.default_rng(10), seeds=2)
    keep = [not (v == 20000 and b == 1.0) for v, b in zip(vol, bal, strict=True)]
    cols = tuple([x for x, k in zip(c, keep, strict=True) if k] for c in (vol, bal, y, done))
    _, per_level = volume_verdicts(Design.of(*cols))
    assert per_level[-1].balance == 1.0 and per_level[-1].status == "cannot be decided"
    assert "none was run there" in per_level[-1].reason
    assert "add this balance level at that volume to the design" in per_level[-1].reason


def test_unequal_variances_add_a_welch_bound_and_keep_the_more_cautious() -> None:
    rng = np.random.default_rng(6)
    vol, bal, y, done = grid(rng, seeds=3)
    y = [v * (8.0 if x == 1000 else 1.0) for v, x in zip(y, vol, strict=True)]
    d = Design.of(vol, bal, y, done)
    assert not d.noise.pooled and d.noise.check_p is not None and d.noise.check_p < 0.05
    assert "Welch" in d.noise.describe()
    w = np.zeros((2, 9))  # the overall contrasts: cells sorted by volume, then balance
    w[0, 0:3] = w[1, 3:6] = 1 / 3
    w[:, 6:9] = -1 / 3
    fam = family(w, d.cells, d.noise, within="balance")
    assert fam.welch is not None
    # with its own variance, 1,000 rows (SD x8) gets a wider error on fewer df than pooled 18
    assert fam.welch.se[0] > 3 * fam.welch.se[1] and fam.welch.df[0] < 18 == fam.df[0]
    pooled_low = fam.estimate - fam.quantile(0.05, two_sided=False) * fam.se
    low, _ = fam.lower_bounds(0.05)
    assert (low <= pooled_low).all() and low[0] == fam.welch.lower_bounds(0.05)[0][0]
    overall, _ = volume_verdicts(d)
    assert [c.low for c in overall.comparisons] == pytest.approx(low.tolist())


def test_balance_effect_is_simultaneous_over_volumes() -> None:
    rng = np.random.default_rng(7)
    vol, bal, y, done = grid(rng, seeds=4, sd=0.05)
    y = [v + (0.5 if b == 1.0 else 0.0) for v, b in zip(y, bal, strict=True)]
    d = Design.of(vol, bal, y, done)
    effects = balance_verdicts(d)
    assert [(b.volume, b.most, b.least, b.tests) for b in effects] == [
        (v, 1.0, 0.3, 3) for v in VOLUMES
    ]
    for b in effects:
        assert b.low is not None and b.high is not None and b.low > 0
        assert b.diff == pytest.approx(0.5, abs=0.1)
        # 3 simultaneous intervals, 27 df: about 2.55 standard errors each way (one alone: 2.05)
        se = d.noise.pooled_sd * math.sqrt(2 / 4)
        assert (b.high - b.low) / 2 / se == pytest.approx(2.55, abs=0.05)
        assert "balance helps beyond seed noise" in b.describe("score")


def test_alpha_is_settable_and_stated() -> None:
    cols = grid(np.random.default_rng(8), seeds=3, effect=1.5)
    five, one = analyse(table(cols)), analyse(table(cols), alpha=0.01)
    assert (five.alpha, one.alpha) == (0.05, 0.01)
    assert one.overall.low < five.overall.low  # type: ignore[operator]
    assert "Family-wise error 1% per test" in one.statements()[-1]
    assert "simultaneous 99% lower bound" in one.overall.reason
    with pytest.raises(UserError, match=r"alpha must be between 0 and 0\.5"):
        analyse(table(cols), alpha=0.7)


def test_permutation_guard_matters_only_with_heavy_tails() -> None:
    from ablate.analysis.contrasts import permutation_quantile

    rng = np.random.default_rng(9)
    vol, bal, y, _ = grid(rng, seeds=5)
    cells = CellMeans.of(vol, bal, y)
    w = np.zeros((2, 9))
    w[0, 0], w[0, 6], w[1, 3], w[1, 6] = 1, -1, 1, -1  # balance 0.3: 1,000 and 5,000 vs 20,000
    fam = family(w, cells, noise(cells), within="balance")
    assert fam.within == 1  # volumes compared: scores shuffled within balance levels
    mvt = quantile(fam.corr, fam.family_df, 0.05, two_sided=False)
    # normal noise, 36 df: the permutation quantile is close to the multivariate t's
    perm = permutation_quantile(cells, 1, w, 0.05, two_sided=False)
    assert abs(perm - mvt) < 0.25
    assert fam.lower_bounds(0.05)[1] == pytest.approx(max(mvt, perm))
