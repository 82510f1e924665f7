"""Review i, findings 8 and 3: the ladder's best mixture had a zero-width "95% interval" with one
seed and a t(1) one with two; it now uses the seed SD pooled over the rung's mixtures, says "no
interval" when there is none, and that the best of several is optimistic. `ablate status` no
longer says the report tests its best mean."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from scipy import stats
from test_ladder import TYPES, ladder_job

from ablate.design import design_key
from ablate.design.kinds.ladder import Ranked, Rung, pooled_noise, rank_rung, rung_points
from ablate.sweep.ladder import best_interval
from ablate.sweep.status import best_mean_line


def rung(*ranked: Ranked) -> Rung:
    return Rung(2, "target", list(ranked), [], noise=pooled_noise(ranked))


def test_one_seed_and_no_pool_prints_no_interval() -> None:
    """Before: "95% interval 0.612 .. 0.612, 1 seed(s)"."""
    best = Ranked("k", "v5000-b0.70", [0.612])
    text = best_interval(rung(best))
    assert text.startswith("no interval (one seed")
    assert "95%" not in text and "0.612" not in text and "optimistic" not in text
    assert not best.has_interval(pooled_noise([best]))


def test_the_pooled_seed_sd_replaces_the_t1_interval() -> None:
    """0.60 / 0.62 alone: t(0.975, 1) = 12.7 gives 0.483 .. 0.737 (still what `interval()`
    without a pool gives); pooled with two more mixtures (4 df) it is t(4) x s_pooled / sqrt 2."""
    best = Ranked("a", "a", [0.62, 0.60])
    assert best.interval() == pytest.approx((0.4829, 0.7371), abs=1e-4)
    others = [Ranked("b", "b", [0.58, 0.59]), Ranked("c", "c", [0.55, 0.57, 0.56])]
    sd, df = pooled_noise([best, *others])
    ss = 2 * 0.01**2 + 2 * 0.005**2 + 2 * 0.01**2
    assert df == 4 and sd == pytest.approx(np.sqrt(ss / 4))
    half = stats.t.ppf(0.975, 4) * sd / np.sqrt(2)
    lo, hi = best.interval(noise=(sd, df))
    assert (lo, hi) == pytest.approx((0.61 - half, 0.61 + half))
    assert hi - lo < 0.2 * (0.7371 - 0.4829)  # t(4) = 2.78 against t(1) = 12.7
    text = best_interval(rung(best, *others))
    assert text == (
        f"95% interval {lo:.4g} .. {hi:.4g}, 2 seed(s), seed SD {sd:.3g} pooled over the "
        "rung's 3 mixture(s) with 2+ seeds (4 df); picked as the best of 3 mixtures on this "
        "model, so its mean is optimistic"
    )


def test_a_one_seed_best_gets_the_pooled_interval() -> None:
    best, other = Ranked("a", "a", [0.63]), Ranked("b", "b", [0.58, 0.59])
    lo, hi = best.interval(noise=pooled_noise([best, other]))
    half = stats.t.ppf(0.975, 1) * np.sqrt(0.005**2 * 2)
    assert (lo, hi) == pytest.approx((0.63 - half, 0.63 + half))
    assert best_interval(rung(best, other)).startswith(f"95% interval {lo:.4g} .. {hi:.4g}, 1 seed")


def test_rank_rung_records_the_pooled_noise() -> None:
    job = ladder_job()
    points = rung_points(job, TYPES, 0, None)  # 10 mixtures x 2 seeds
    values = {design_key(p): [0.5 + 0.01 * p.seed] for p in points}
    r = rank_rung(job, 0, points, values)
    assert r.noise == (pytest.approx(np.sqrt(0.005**2 * 2)), 10)


def trial(number: int, value: float, share: float) -> Any:
    attrs = {"proportions": {"a": share, "b": 1 - share}, "volume": 1000}
    return SimpleNamespace(number=number, values=[value], user_attrs=attrs)


def test_status_best_mean_claims_no_test_and_says_it_is_optimistic() -> None:
    job = SimpleNamespace(objective=SimpleNamespace(metric="score"))
    done = [trial(0, 0.6, 0.5), trial(1, 0.62, 0.5), trial(2, 0.5, 0.2), trial(3, 0.55, 0.2)]
    (line,) = best_mean_line(job, done, max)  # type: ignore[arg-type]
    assert "tests it against" not in line
    assert "score 0.61 over 2 seed(s)" in line
    assert line.endswith(
        "(the best of 2 mixtures' means, so optimistic; `ablate report` shows which differences "
        "are beyond seed noise, with no test that this one is the best)"
    )
