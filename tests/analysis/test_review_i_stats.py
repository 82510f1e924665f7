"""Statistics audit (review i): a grid's balance levels however many, the balance verdict's
favoured type, the comparison table's labels under no effect. Trial tables built by hand as
`ablate.analysis.load` returns them; no Ray, no Optuna."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest

from ablate.analysis import analyse
from ablate.analysis.stats import add_levels
from ablate.design import proportions_for_balance

TYPES = ["a", "b", "c", "d"]


def grid_table(
    rng: np.random.Generator,
    volumes: Sequence[float] = (1000, 4000, 16000),
    balances: Sequence[float] = (0.4, 0.7, 1.0),
    seeds: int = 2,
    score: Callable[[float, dict[str, float]], float] = lambda v, p: 0.6,
    sd: float = 0.02,
    types: Sequence[str] = TYPES,
    direction: str = "maximize",
) -> pd.DataFrame:
    """A grid (`proportions_for_balance`: the first type on top) of volumes x balances x seeds,
    scored `score(volume, shares)` + N(0, sd)."""
    rows = []
    for v in volumes:
        for b in balances:
            props = proportions_for_balance(list(types), b)
            for s in range(seeds):
                rows.append(
                    {"trial": len(rows), "state": "COMPLETE",
                     "value": score(v, props) + rng.normal(0, sd),
                     "mixture": f"v{v:g}-b{b:.2f}-s{s}", "volume": float(v), "balance": b,
                     "seed": s, "model": "", "settings": "", "requeued": False,
                     **{f"p/{t}": props[t] for t in types}}
                )  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs.update(metric="score", direction=direction, study="sim", task_types=list(types))
    return df


def test_a_grid_of_ten_balance_levels_keeps_them_and_tests_balance() -> None:
    """Before: past 8 levels a grid's balances were binned into quartiles as a random design's
    are: no balance statement for an effect of 18 seed SDs, levels at invented balances."""
    balances = [0.1 * i for i in range(1, 11)]
    df = grid_table(
        np.random.default_rng(0),
        balances=balances,
        score=lambda v, p: 0.6 + 0.09 * (1.0 - max(p.values())),
        sd=0.005,
    )
    levels = add_levels(df)
    assert (levels["bal_level"] == df["balance"].round(3)).all()
    findings = analyse(df)
    assert sorted(r.balance for r in findings.per_level) == sorted(round(b, 3) for b in balances)
    said = " ".join(b.describe("score", findings.cells.sign) for b in findings.balance)
    assert said.count("balance helps beyond seed noise") == 3  # at each of the 3 volumes


def test_random_mixtures_past_eight_balances_are_still_binned() -> None:
    """A random design's mixtures differ in more than balance: their bins keep the plots
    readable, and `analyse` tests no balance between them."""
    rng = np.random.default_rng(1)
    rows = []
    for i, shares in enumerate(rng.dirichlet(np.ones(len(TYPES)), 12)):
        props = dict(zip(TYPES, shares.tolist(), strict=True))
        balance = float(-(shares * np.log(shares)).sum() / math.log(len(TYPES)))
        for v in (1000.0, 4000.0):
            for s in range(2):
                rows.append(
                    {"trial": len(rows), "state": "COMPLETE", "value": 0.6 + rng.normal(0, 0.01),
                     "mixture": f"rand{i}-v{v:g}-s{s}", "volume": v, "balance": balance,
                     "seed": s, "model": "", "settings": "", "requeued": False,
                     **{f"p/{t}": props[t] for t in TYPES}}
                )  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs.update(metric="score", direction="maximize", study="sim", task_types=TYPES)
    assert add_levels(df)["bal_level"].nunique() == 4
    assert analyse(df).balance == []


def test_a_grid_balance_effect_names_the_type_its_unbalanced_mixtures_favour() -> None:
    """Before: a score that moves with the share of `a` alone read "balance hurts" with `a`
    listed first and "balance helps" with `b` first, as an effect of balance."""
    for order, helps in ((["a", "b", "c", "d"], False), (["b", "a", "c", "d"], True)):
        df = grid_table(
            np.random.default_rng(2),
            types=order,
            score=lambda v, p: 0.5 + 0.1 * p["a"],
            sd=0.005,
        )
        findings = analyse(df)
        said = [b.describe("score", findings.cells.sign) for b in findings.balance]
        assert len(said) == 3
        first = order[0]
        way = "helps" if helps else "hurts"
        more = "less" if helps else "more"
        for text in said:
            assert f"balance {way} beyond seed noise, or {more} `{first}` helps" in text
            assert f"cannot tell balance from the share of `{first}`" in text


def test_larger_better_rows_are_labelled_by_simultaneous_bounds() -> None:
    """Before: "smaller better" needed the family's simultaneous bound, "larger better" only
    its own one-sided one: with no effect at all, 11% of 5-volume studies had such a row (36%
    with 6 balance levels); now at most the family's 5% (4.5% in 200 studies)."""
    from ablate.analysis.verdict import Comparison

    edge = Comparison(1000.0, -0.03, 0.01, -0.06, -0.01, 0.0, 0.002)
    assert edge.outcome == "within noise"  # its own bound below 0, the family's not
    assert Comparison(1000.0, -0.05, 0.01, -0.08, -0.03, 0.0, -0.02).outcome == "larger better"
    rng = np.random.default_rng(12345)
    labelled = 0
    for _ in range(60):
        findings = analyse(grid_table(rng, (500, 1000, 2000, 4000, 16000), (1.0,), 2))
        comparisons = findings.overall.comparisons
        assert all(c.high_sim >= c.high for c in comparisons)
        labelled += any(c.outcome == "larger better" for c in comparisons)
    assert labelled <= 7  # 5% expected: 3 of 60; 8 or more has chance under 2%


def test_cell_intervals_follow_the_volumes_noise_when_it_differs() -> None:
    """Before: the bars always pooled the seed SD, so with the smallest volume 3x noisier they
    covered its cells' true means 79% of the time (the verdict, same report, went per volume)."""
    from ablate.analysis import cell_stats

    def noisy_small(rng: np.random.Generator) -> pd.DataFrame:
        df = grid_table(rng, seeds=3, sd=0.0)
        small = df["volume"] == 1000
        df.loc[small, "value"] += rng.normal(0, 0.06, small.sum())
        df.loc[~small, "value"] += rng.normal(0, 0.02, (~small).sum())
        return df

    rng = np.random.default_rng(3)
    covered = total = 0
    small = large = 0.0  # summed widths at 1,000 and 4,000 rows
    for _ in range(150):
        cells = cell_stats(noisy_small(rng))
        at = cells.table.xs(1000.0, level=0)
        covered += int(((at["low"] <= 0.6) & (at["high"] >= 0.6)).sum())
        total += len(at)
        width = cells.table["high"] - cells.table["low"]
        small += width.xs(1000.0, level=0).sum()
        large += width.xs(4000.0, level=0).sum()
    assert "and per volume" in cells.describe()
    assert small > 1.5 * large  # 3x the SD there; the others' bars no narrower than pooled
    assert covered / total >= 0.9  # 95% nominal; pooled bars: 79%


def test_dunnett_quantile_matches_the_table_and_the_multivariate_t() -> None:
    from ablate.analysis.best_set import dunnett_one_sided
    from ablate.analysis.contrasts import quantile

    # Dunnett's one-sided 5% table: 4 and 5 treatments against a control, 20 df; 2 at infinity
    assert dunnett_one_sided(4, 20.0, 0.05) == pytest.approx(2.30, abs=0.01)
    assert dunnett_one_sided(5, 20.0, 0.05) == pytest.approx(2.39, abs=0.01)
    assert dunnett_one_sided(2, math.inf, 0.05) == pytest.approx(1.92, abs=0.01)
    for m, df in ((3, 10), (8, 30)):
        corr = np.full((m, m), 0.5)
        np.fill_diagonal(corr, 1.0)
        assert dunnett_one_sided(m, float(df), 0.05) == pytest.approx(
            quantile(corr, df, 0.05, two_sided=False), abs=2e-3
        )


def test_the_best_set_keeps_the_true_best_95_percent_of_the_time() -> None:
    """Review i: the recommended mixture (the best observed mean) was the true best in 72% of
    grids whose best cell was 1.5 seed SDs ahead; MCB's set holds it with probability 95%."""
    from ablate.analysis.best_set import best_set

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(9), 2)
    kept = {0.0: 0, 0.03: 0, 0.1: 0}
    sizes = {0.0: 0, 0.03: 0, 0.1: 0}
    for shift in kept:
        truth = np.full(9, 0.6)
        truth[4] += shift
        for _ in range(400):
            _, _, found = best_set(truth[groups] + rng.normal(0, 0.02, groups.size), groups)
            kept[shift] += bool(found.could_be_best[4])
            sizes[shift] += found.size
    assert kept[0.0] >= 366 and kept[0.03] >= 390 and kept[0.1] == 400  # 95%: 380 of 400
    assert sizes[0.1] / 400 < 2.0 < sizes[0.0] / 400  # a clear best stands nearly alone
    _, _, unknown = best_set([0.5, 0.6, 0.7], [0, 1, 2])  # one seed each: no test
    assert not unknown.known and unknown.size == 3
    assert "which could be the best is unknown" in unknown.describe(3)
    # review k: two seeds each, all alike (noise 0: a seed that reaches nothing) was called
    # "no mixture has two seeds" beside "over 2 trial(s)"
    _, _, alike = best_set([0.5, 0.5, 0.7, 0.7], [0, 0, 1, 1])
    assert not alike.known and alike.same_seeds and alike.size == 2
    text = alike.describe(2)
    assert text.startswith("every seed of each mixture scored the same (check that the seed")
    assert "two seeds" not in text
