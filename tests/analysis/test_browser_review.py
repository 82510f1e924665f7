"""The HTML report as a reviewer read it in a browser (review D, section 1): a search gets no
verdict from its bins but the surrogate's volume curve, the verdict box says which balance
levels its scores average, the noise text says what was done, and the plots read."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_analysis import TYPES, grid_study, peak_at_5000
from test_report import dirichlet_study
from test_verdict_edges import table

from ablate.analysis import load
from ablate.analysis.contrasts import CellMeans, noise
from ablate.analysis.findings import analyse
from ablate.analysis.page import _compared, _surrogates, render_page
from ablate.analysis.plots import DODGE, _cost_unit, plot_history, plot_volume_balance
from ablate.analysis.stats import cell_stats
from ablate.analysis.surrogates import CrossValidation, fit_surrogates
from ablate.analysis.volume_answer import N_VOLUMES, volume_answer


def searched_table() -> Any:
    """16 searched trials, one each, the score rising with balance: bins would test it."""
    rng = np.random.default_rng(5)
    vols = np.geomspace(1000, 20000, 16).round()
    bals = rng.uniform(0.3, 1.0, 16)
    rows = [
        (v, b, 0.5 + 0.3 * b - 0.05 * math.log(v / 1000) + rng.normal(0, 0.01), "COMPLETE")
        for v, b in zip(vols, bals, strict=True)
    ]
    return table(rows, [f"search{i}-v{v:g}" for i, v in enumerate(vols)])


def test_a_search_gets_no_verdict_from_its_bins() -> None:
    f = analyse(searched_table(), metric="acc")
    assert f.searched and f.verdict == "cannot be decided"
    assert all(r.status == "cannot be decided" for r in f.per_level)
    assert "bins cannot decide it" in f.overall.reason
    assert "no volume effect and their spread is no seed noise" in f.overall.reason
    assert "grid follow-up" in f.overall.reason
    assert f.balance == []  # no balance test from bins either
    assert f.detectable == "" and "Per balance level" not in f.headline()
    text = " ".join(f.statements())
    assert "HOLDS" not in text and ": holds:" not in text and "not hold" not in text.lower()
    assert "surrogate" in f.method
    assert "trials per bin" in f.cells.describe() and "not seed noise" in f.cells.describe()


def test_a_search_is_answered_by_the_surrogate_within_the_tried_volumes(make_job: Any) -> None:
    job = make_job()
    dirichlet_study(job, n=60)  # peak_at_5000, volumes 500..50,000, one trial each
    df = load(job)
    sur = fit_surrogates(df)
    a = volume_answer(sur)
    tried = sur.data.volumes
    assert len(a.volumes) == N_VOLUMES
    assert a.volumes[0] == pytest.approx(tried.min(), abs=0.5)
    assert a.volumes[-1] == pytest.approx(tried.max(), abs=0.5)
    # the landscape peaks at 5,000 rows: the surrogate puts the best volume near it, well
    # below the largest tried, in nearly every bootstrap refit
    assert a.less_is_more and 2000 < a.volumes[a.best] < 12500
    assert a.chance >= 0.9
    assert a.predicted[a.best] > a.predicted[-1] + 0.1
    text = a.describe("score")
    assert text.startswith("By the surrogate (a prediction, not a test)")
    assert "It expects less to be more" in text and "grid" in text
    f = analyse(df)
    html = render_page(job, df, "score", f, sur, None, {}, [], a)
    box = html[html.index("<div class='verdict") : html.index("</div>")]
    assert "cannot be decided" in box and "By the surrogate" in box
    assert "over all balance levels" not in box and "family-wise" not in box


def test_the_verdict_box_names_the_levels_it_averages(make_job: Any) -> None:
    job = make_job()
    grid_study(job, peak_at_5000, balances=(0.5, 0.8, 1.0), seeds=(0, 1))
    df = load(job)
    f = analyse(df)
    assert f.overall.levels == (0.5, 0.8, 1.0)
    assert "(mean over balance levels 0.50/0.80/1.00)" in f.overall.reason
    assert f.scope_words() == "over all balance levels"
    # a level's own test quotes its own cells: no averaging said
    assert "mean over balance" not in f.per_level[0].reason
    html = render_page(job, df, "score", f, None, None, {}, [])
    rows = html[html.index("<h2>Cells") :]
    means = f.cells.table["mean"].unstack("bal_level").mean(axis=1)
    for v, m in means.items():
        assert f"<td>{v:,.0f}</td><td>overall (mean over balance 0.50/0.80/1.00)</td>" in rows
        assert f"<td>{m:.3f}</td>" in rows


def test_one_level_at_every_volume_is_said_and_not_repeated(make_job: Any) -> None:
    # balance 1.0 at every volume, 0.5 only at 1,000 and 5,000: the overall test is 1.0's
    rows = [
        (v, b, peak_at_5000(dict.fromkeys(TYPES, 1 / 3), v, 0) * b + 0.01 * s, "COMPLETE")
        for v in (1000, 5000, 20000)
        for b in (0.5, 1.0)
        for s in (0, 1)
        if not (v == 20000 and b == 0.5)
    ]
    f = analyse(table(rows), metric="acc")
    assert f.overall.levels == (1.0,)
    assert f.scope_words().startswith("at balance 1.00 only")
    assert "over all balance levels" not in f.headline()
    compared = _compared(f)
    assert f.overall not in compared and len(compared) == 2  # the overall rows copied 1.00's


def test_unequal_variances_without_a_replicate_say_the_pooled_bound_was_kept() -> None:
    # volume 1,000: cells of 2 seeds, spread 1.0; 5,000: 2 seeds, spread 0.01; 20,000: 1 seed
    vol = [1000, 1000, 1000, 1000, 5000, 5000, 5000, 5000, 20000]
    bal = [0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 1.0]
    y = [0.0, 1.0, 0.5, 1.5, 0.0, 0.01, 0.5, 0.51, 0.7]
    n = noise(CellMeans.of(vol, bal, y))
    assert n.pooled and n.check_p is not None and n.check_p < 0.2
    assert n.unreplicated == (20000.0,)
    text = n.describe()
    assert "equal variances" not in text
    assert f"the variances differ across volumes (Bartlett p = {n.check_p:.2f} < 0.2)" in text
    assert "volume 20,000 has no replicated cell" in text and "may be too narrow" in text


def test_tied_regrets_say_the_pick_fell_to_spearman() -> None:
    from ablate.analysis.surrogates import Surrogates

    cv = {
        n: CrossValidation(n, rho, rho, 0.01, 5, 0.1, regret=0.0)
        for n, rho in (("a", 0.5), ("b", 0.9))
    }
    sur = Surrogates(data=None, cv=cv, best="b")  # type: ignore[arg-type]
    text = "".join(_surrogates(sur, ""))
    assert "Every model ties on regret (0.0000: each ranked the best held-out mixture first" in text
    assert "the pick fell to the held-out Spearman" in text
    cv["a"].regret = 0.02
    assert "ties on regret" not in "".join(_surrogates(sur, ""))


def test_plots_of_a_fixed_grid_and_of_a_search(make_job: Any, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    job = make_job()
    grid_study(job, peak_at_5000, balances=(0.5, 0.8, 1.0), seeds=(0, 1))
    df = load(job)
    seen: dict[str, Any] = {}
    real_save = plt.Figure.savefig

    def keep(fig: Any, *args: Any, **kwargs: Any) -> None:
        seen["fig"] = fig
        real_save(fig, *args, **kwargs)

    plt.Figure.savefig = keep  # type: ignore[method-assign]
    try:
        plot_history(df, tmp_path / "h.png")
        ax = seen["fig"].axes[0]
        assert "fixed design" in ax.get_title()
        assert not ax.get_lines()  # no "best so far" staircase: the order is the design's
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks)
        plot_volume_balance(df, tmp_path / "v.png")
        ax = seen["fig"].axes[0]
        xs = [c.lines[0].get_xdata() for c in ax.containers]  # one errorbar per level
        assert len(xs) == 3  # a line per level, dodged: 10**(-DODGE), 1, 10**DODGE
        ratios = sorted(float(x[0]) / 1000 for x in xs)
        assert ratios == pytest.approx([10**-DODGE, 1.0, 10**DODGE])
        search = searched_table()
        assert cell_stats(search, "acc").searched
        plot_volume_balance(search, tmp_path / "s.png", "acc")
        ax = seen["fig"].axes[0]
        assert not ax.get_lines() and "not a volume curve" in ax.get_title()
        (points,) = ax.collections
        assert len(points.get_offsets()) == 16  # every trial at its own volume
    finally:
        plt.Figure.savefig = real_save  # type: ignore[method-assign]


def test_cost_in_a_unit_that_reads() -> None:
    import pandas as pd

    hours, unit = _cost_unit(pd.Series([5e-5, 7e-5]))
    assert unit == "seconds" and list(hours) == pytest.approx([0.18, 0.252])
    assert _cost_unit(pd.Series([0.01, 0.05]))[1] == "minutes"
    assert _cost_unit(pd.Series([0.5, 2.0]))[1] == "hours"


def test_a_search_at_one_volume_puts_no_volume_question(make_job: Any) -> None:
    """Review m: nine equal volumes were predicted, and the first "beat" the last: "it expects
    less to be more" from a search that never varied volume."""
    import optuna

    from ablate.analysis.load import result_trial

    job = make_job()
    rng = np.random.default_rng(0)
    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction="maximize")
    for i in range(30):
        props = dict(zip(TYPES, rng.dirichlet(np.ones(3)).tolist(), strict=True))
        value = peak_at_5000(props, 5000, 0) + rng.normal(0, 0.01)
        study.add_trial(result_trial(props, 5000, 0, f"d{i}", value, {"score": value}, 1.0))
    a = volume_answer(fit_surrogates(load(job)))
    assert a.volumes == (5000.0,) and not a.less_is_more
    text = a.describe("score")
    assert text.startswith("Every trial ran at 5,000 rows: this search cannot say whether less")
    assert "less to be more" not in text
