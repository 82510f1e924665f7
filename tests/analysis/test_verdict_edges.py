"""Edge cases of the verdict (review C): too few seeds for the heavy-tail guard, bounds that are 0
up to rounding, completed trials without the metric, search studies, all-equal scores.

Trial tables are built by hand; every number is computed here from the scores.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.stats import t as student_t

from ablate.analysis import Design, analyse, study_design, volume_verdicts
from ablate.analysis.contrasts import (
    CellMeans,
    arrangements,
    family,
    guard_needs,
    guard_seeds,
    noise,
)
from ablate.analysis.findings import guard_text
from ablate.analysis.plan_seeds import guard_notes, plan_text
from ablate.analysis.power import GUARD_NOTE, DesignSize, minimal_effect
from ablate.analysis.verdict import RETRY, Comparison
from ablate.analysis.words import next_seeds, plural


def table(rows: list[tuple[float, float, float, str]], names: list[str] | None = None) -> Any:
    """A trial table from (volume, balance, score, state) rows, each its own seed."""
    import pandas as pd

    df = pd.DataFrame(
        {
            "state": [r[3] for r in rows],
            "volume": [r[0] for r in rows],
            "balance": [r[1] for r in rows],
            "seed": list(range(len(rows))),
            "acc": [r[2] for r in rows],
            "value": [r[2] for r in rows],
        }
    )
    if names is not None:
        df["mixture"] = names
    df.attrs.update(metric="acc", direction="maximize", study="sim")
    return df


def two_by_two(small: tuple[float, float], large: tuple[float, float]) -> Any:
    """2 volumes x 1 balance level x 2 seeds: the reviewer's perm_* studies."""
    rows = [(5000, 1.0, x, "COMPLETE") for x in small]
    return table([*rows, *((20000, 1.0, x, "COMPLETE") for x in large)])


# --- the heavy-tail guard needs arrangements ---------------------------------------------------


def test_arrangements_are_counted_within_strata() -> None:
    # 2 volumes x 2 seeds at one balance level: C(4, 2) = 6; 3 seeds: C(6, 3) = 20
    cells = CellMeans.of([1, 1, 2, 2], [1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4])
    assert arrangements(cells, within=1) == 6
    cells3 = CellMeans.of([1, 1, 1, 2, 2, 2], [1] * 6, np.arange(6.0))
    assert arrangements(cells3, within=1) == 20
    # 3 x 3 grid, 2 seeds: per balance level 6! / (2! 2! 2!) = 90, over 3 levels 90^3
    vol = np.repeat([1.0, 2.0, 3.0], 6)
    bal = np.tile(np.repeat([0.3, 0.7, 1.0], 2), 3)
    grid = CellMeans.of(vol, bal, np.arange(18.0))
    assert arrangements(grid, within=1) == 90**3
    assert guard_needs(0.05) == 1000 and guard_needs(0.001) == 2000
    # seeds that bring the guard in: 2 volumes at one level need C(2n, n) >= 1000, n = 7 (3432)
    assert guard_seeds(cells, within=1, alpha=0.05) == 7
    assert DesignSize(2, 1, 7).arrangements() == 3432 and DesignSize(2, 1, 6).arrangements() == 924


@pytest.mark.parametrize(
    ("small", "large"),
    [
        ((0.70, 0.71), (0.60, 0.61)),
        ((0.70, 0.72), (0.60, 0.61)),
        ((0.90, 0.91), (0.60, 0.61)),
        ((0.70, 0.7001), (0.60, 0.6001)),
    ],
)
def test_two_seeds_decide_by_the_t_bound_not_by_rounding(
    small: tuple[float, float], large: tuple[float, float]
) -> None:
    overall, _ = volume_verdicts(study_design(two_by_two(small, large), "acc"))
    # the guard cannot take part (6 arrangements): the bound is the t's, on 2 df
    ss = sum((x - np.mean(c)) ** 2 for c in (small, large) for x in c)
    sd = math.sqrt(ss / 2)
    effect = np.mean(small) - np.mean(large)
    low = effect - student_t.ppf(0.95, 2) * sd * math.sqrt(1 / 2 + 1 / 2)
    assert overall.guard is False
    assert overall.status == "holds"
    assert overall.low == pytest.approx(low, rel=1e-9) and overall.low > 0.05
    assert overall.quantile == pytest.approx(2.919986, abs=1e-5)
    # the same evidence up to 1e-13 gives the same verdict and the same bound
    jitter = (small[0] + 1e-13, small[1] - 1e-13)
    again, _ = volume_verdicts(study_design(two_by_two(jitter, large), "acc"))
    assert again.status == "holds" and again.low == pytest.approx(low, rel=1e-9)


def test_the_report_says_when_the_guard_is_left_out() -> None:
    f = analyse(two_by_two((0.70, 0.71), (0.60, 0.61)), metric="acc")
    note = next(s for s in f.statements() if "without the heavy-tail guard" in s)
    assert "6 distinct arrangements" in note and "fewer than the 1,000" in note
    assert "7 seeds per mixture would bring it in" in note
    assert "1 smaller volume," in f.overall.reason  # no "1 smaller volume(s)"
    assert "2 volumes x 1 balance level x 2 seeds = 4 trials" in f.detectable
    assert "too few arrangements of the scores for its heavy-tail guard" in f.detectable


def test_the_guard_still_takes_part_on_a_3_by_3_grid() -> None:
    """The overall test shuffles within 3 levels (90^3 arrangements): guarded. Each level's own
    test has its level's 90 only (review o: it counted every level's, and ran a permutation
    quantile too coarse to use: 58% power at 2.5 SD where the multivariate t gives 66%)."""
    rng = np.random.default_rng(3)
    vol = np.repeat([1000.0, 5000.0, 20000.0], 6)
    bal = np.tile(np.repeat([0.3, 0.7, 1.0], 2), 3)
    d = Design.of(vol, bal, rng.normal(0, 1, 18), np.ones(18, bool), variance_check=0.0)
    overall, per_level = volume_verdicts(d)
    assert overall.guard is True and all(r.guard is False for r in per_level)
    text = guard_text(d, 0.05, "volume", per_level=True)
    assert text.startswith("The volume comparisons at each balance level ran without the")
    assert "within one balance level gives only 90 distinct arrangements" in text


def test_a_bound_at_zero_up_to_rounding_decides_nothing() -> None:
    se = 0.01
    tol = 1e-9 * (0.03 + se)  # Family.tolerance for an estimate of 0.03
    assert Comparison(5000, 0.03, se, 1e-13, 0.05, tol).outcome == "within noise"
    assert Comparison(5000, 0.03, se, -1e-13, 0.05, tol).outcome == "within noise"
    assert Comparison(5000, 0.03, se, 1e-6, 0.05, tol).outcome == "smaller better"
    assert Comparison(5000, -0.03, se, -0.06, -1e-13, tol).outcome == "within noise"
    cells = CellMeans.of([1, 1, 2, 2], [1, 1, 1, 1], [0.70, 0.71, 0.60, 0.61])
    fam = family(np.array([[1.0, -1.0]]), cells, noise(cells, check=0.0), within="balance")
    # se = pooled SD sqrt(1e-4 / 2) x sqrt(1/2 + 1/2)
    assert fam.tolerance[0] == pytest.approx(1e-9 * (0.1 + math.sqrt(1e-4 / 2)))


# --- ablate plan agrees with what the verdict does ---------------------------------------------


def test_plan_says_when_the_verdict_has_no_guard(make_job: Any) -> None:
    design = {"kind": "grid", "volumes": [5000, 20000], "balance": [1.0], "seeds": [0, 1]}
    text = plan_text(make_job(design=design), effect=0.05, noise=0.01)
    assert "Design: 2 volumes x 1 balance level x 2 seeds = 4 trials." in text
    assert "detects a volume effect of 0.03979 (3.98 seed SDs" in text
    assert "with 2 seeds per mixture, the power is the multivariate-t test's" in text
    assert "7 seeds per mixture bring the guard in" in text
    assert guard_notes([DesignSize(3, 3, 2)], 0.05) == [f"Note: {GUARD_NOTE}."]
    assert guard_notes([DesignSize(3, 3, 5)], 0.05) == []


def test_the_planned_power_is_the_verdicts_without_the_guard() -> None:
    # 2 volumes x 1 level x 2 seeds, normal noise, the effect the plan says is detected with 80%
    # power: the verdict (its variance check off: the plan's model) detects it about as often
    mde = minimal_effect(DesignSize(2, 1, 2), 1.0)
    assert mde == pytest.approx(3.979, abs=1e-3)
    rng = np.random.default_rng(0)
    vol, bal = np.repeat([5000.0, 20000.0], 2), np.ones(4)
    hits = 0
    for _ in range(400):
        y = np.where(vol == 5000.0, mde, 0.0) + rng.normal(0, 1, 4)
        d = Design.of(vol, bal, y, np.ones(4, bool), variance_check=0.0)
        hits += volume_verdicts(d)[0].status == "holds"
    assert 0.74 <= hits / 400 <= 0.86  # 80% +- 3 binomial SEs


# --- completed trials without the metric -------------------------------------------------------


def nan_at_largest(failed: bool = False) -> Any:
    rows = []
    for v, score in ((1000, 0.5), (5000, 0.55), (20000, math.nan)):
        for b in (0.4, 1.0):
            for s in range(3):
                state = "FAIL" if failed and v == 20000 and s == 0 else "COMPLETE"
                rows.append((v, b, score + 0.01 * s, state))
    return table(rows)


def test_a_nan_metric_is_not_a_failed_trial() -> None:
    f = analyse(nan_at_largest(), metric="acc")
    d = study_design(nan_at_largest(), "acc")
    assert d.n_unrecorded == 6 and not d.missing
    assert d.unrecorded == {(20000.0, 0.4): 3, (20000.0, 1.0): 3}
    assert "6 completed trials did not record `acc`" in f.overall.reason
    assert "check that the objective reports `acc`" in f.overall.reason
    assert RETRY not in f.overall.reason and "did not complete" not in f.overall.reason
    for r in f.per_level:
        assert "3 completed trials did not record `acc`" in r.reason and RETRY not in r.reason
    assert "18 trials, 12 completed with a score; 6 completed trials did not record `acc`" in (
        f.detectable
    )
    # one of them failed as well: both reasons, and the retry advice for the failed one
    g = analyse(nan_at_largest(failed=True), metric="acc")
    assert "2 did not complete, 4 completed trials did not record `acc`" in g.overall.reason
    assert RETRY in g.overall.reason and "check that the objective reports" in g.overall.reason


# --- search studies ----------------------------------------------------------------------------


def test_a_search_gets_advice_a_search_can_follow() -> None:
    rng = np.random.default_rng(5)
    vols = np.geomspace(1000, 20000, 16).round()
    bals = rng.uniform(0.3, 1.0, 16)
    rows = [
        (v, b, 0.5 + 0.1 * b + rng.normal(0, 0.01), "COMPLETE")
        for v, b in zip(vols, bals, strict=True)
    ]
    names = [f"search{i}-v{v:g}" for i, v in enumerate(vols)]
    f = analyse(table(rows, names), metric="acc")
    d = study_design(table(rows, names), "acc")
    assert d.searched
    text = " ".join([f.overall.reason, *(r.reason for r in f.per_level)])
    assert RETRY not in text and "3 per mixture" not in text
    # few trials, not binned: named as the search names them
    few = table([(1000, 0.5, 0.4, "COMPLETE"), (5000, 0.9, 0.5, "COMPLETE")], ["a", "b"])
    assert not study_design(few, "acc").searched
    few["mixture"] = ["centroid-v1000", "search1-v5000"]
    d = study_design(few, "acc")
    assert d.searched
    overall, _ = volume_verdicts(d)
    assert "a search runs each mixture once" in overall.reason
    assert "`ablate propose JOB.yaml`" in overall.reason and "3 per mixture" not in overall.reason
    assert "grid follow-up" in next_seeds(1, searched=True)


# --- every trial scored the same ---------------------------------------------------------------


def test_all_equal_scores_say_so() -> None:
    rows = [(v, b, 0.5, "COMPLETE") for v in (1000, 5000) for b in (0.4, 1.0) for _ in range(2)]
    f = analyse(table(rows), metric="acc")
    assert f.verdict == "cannot be decided"
    assert f.overall.reason.startswith("every completed trial scored the same (0.500)")
    assert "check that `acc` varies" in f.overall.reason
    assert f.detectable == ""
    text = " ".join(f.statements())
    assert "nan" not in text and "add seeds" not in text and "effect of 0 " not in text
    assert "every seed in these cells scored the same: no interval" in text


def test_plural() -> None:
    assert plural(1, "balance level") == "1 balance level"
    assert plural(3, "balance level") == "3 balance levels"
    assert plural(1200, "trial") == "1,200 trials"
    assert DesignSize(1, 1, 1).describe() == "1 volume x 1 balance level x 1 seed = 1 trial"


# --- a sweep under way: trials still to come are not failures ----------------------------------


def test_waiting_and_requeued_trials_are_not_counted_as_failed() -> None:
    # the largest volume's cell: one trial waiting, one running, and a stopped driver's trial
    # (FAIL, requeued) whose copy is the waiting one: 2 to come, none failed
    df = table(
        [
            (5000, 1.0, 0.61, "COMPLETE"),
            (5000, 1.0, 0.63, "COMPLETE"),
            (20000, 1.0, math.nan, "FAIL"),
            (20000, 1.0, math.nan, "WAITING"),
            (20000, 1.0, math.nan, "RUNNING"),
        ]
    )
    df["requeued"] = [False, False, True, False, False]
    df.loc[3, "seed"] = 2  # the requeued trial's copy: the same design point
    d = study_design(df, "acc")
    assert d.pending == {(20000.0, 1.0): 2} and d.missing == {}
    assert d.lost([(20000.0, 1.0)]) == (0, 0, 2, 0)
    f = analyse(df, "acc")
    assert "(2 still waiting or running)" in f.headline()
    assert "the sweep has yet to finish them" in f.headline() and RETRY not in f.headline()
    assert f.to_come == 2 and f.failures.trials == 0  # the report's line: "2 still waiting..."
    # a failure next to them is still one, with its own advice
    df.loc[4, "state"] = "FAIL"
    d = study_design(df, "acc")
    assert d.lost([(20000.0, 1.0)]) == (1, 0, 1, 0)
    assert RETRY in analyse(df, "acc").headline()
