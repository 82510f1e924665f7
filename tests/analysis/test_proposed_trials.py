"""Trials `ablate propose` adds to a fixed design: the README's report -> propose -> sweep ->
report workflow. They are mixtures, not levels of the design: the verdict, the cells, the power
sentence and the volume x balance plots are those of the grid alone; the mixtures table, the
surrogates and trials.csv keep them. And no two balance levels print alike."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_analysis import grid_study, peak_at_5000

from ablate.analysis import analyse, load
from ablate.analysis.load import proposed
from ablate.analysis.plot_base import load_pyplot
from ablate.analysis.plots import _curves
from ablate.analysis.report import propose_and_enqueue, write_report
from ablate.analysis.stats import cell_stats, design_trials
from ablate.analysis.words import bal
from ablate.errors import UserError

GRID = {"volumes": [1000, 5000, 20000], "balance": [0.5, 1.0], "seeds": [0, 1]}


def run_proposals(job: Any) -> int:
    """Run the trials `ablate propose` enqueued as a sweep would: each WAITING trial asked,
    scored on the grid's landscape (plus seed noise) and told; how many ran."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=job.study, storage=job.storage_url)
    rng = np.random.default_rng(1)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for _ in waiting:
        trial = study.ask()
        attrs = trial.user_attrs
        value = peak_at_5000(attrs["proportions"], attrs["volume"], attrs["seed"])
        value += rng.normal(0, 0.005)
        trial.set_user_attr("metrics", {"score": value})
        trial.set_user_attr("seconds", 2.0)
        study.tell(trial, value)
    return len(waiting)


def test_proposals_stay_out_of_the_grid_report(make_job: Any, tmp_path: Path) -> None:
    job = make_job(design=GRID)
    grid_study(job, peak_at_5000, volumes=(1000, 5000, 20000), seeds=(0, 1))
    before = write_report(job, tmp_path / "grid", log_to_mlflow=False, parallel=False)
    done = propose_and_enqueue(job, n=3, volume=5000)
    assert done.trials == 6 and run_proposals(job) == 6  # 3 mixtures x 2 seeds
    df = load(job)
    assert proposed(df).sum() == 6
    assert df.loc[proposed(df), "mixture"].str.match(r"prop\d+-").all()
    after = write_report(job, tmp_path / "after", log_to_mlflow=False, parallel=False)

    # the grid's verdict, cells and power sentence, word for word
    a, b = before.findings, after.findings
    pd.testing.assert_frame_equal(a.cells.table, b.cells.table)
    assert (a.verdict, a.overall.reason) == (b.verdict, b.overall.reason)
    assert [r.reason for r in a.per_level] == [r.reason for r in b.per_level]
    assert [r.balance for r in b.per_level] == [0.5, 1.0]
    assert b.detectable == a.detectable
    assert "(3 volumes x 2 balance levels x 2 seeds = 12 trials)" in b.detectable
    assert "completed" not in b.detectable  # no trials reported missing
    extra = [s for s in b.statements() if s not in a.statements()]
    assert len(extra) == 1 and extra[0].startswith(
        "6 trials of 3 mixtures proposed by `ablate propose` (6 completed) are not part of the "
        "design"
    )
    assert not b.searched and b.n_complete == 18

    # where the proposals are: the page's line, the mixtures table, trials.csv, the surrogates
    page = after.html.read_text()
    assert "6 trials of 3 mixtures proposed by" in page
    assert len(re.findall(r"prop\d+-\d+-v5000 \(proposed\)", page)) == 3
    assert "(proposed)" not in before.html.read_text()
    csv = pd.read_csv(after.csv)
    assert csv["proposed_by"].fillna("").astype(bool).sum() == 6
    assert after.surrogates is not None and len(after.surrogates.data.y) == 18
    assert {"volume_balance", "heatmap", "simplex", "history"} <= set(after.plots)


def test_a_search_keeps_its_proposals_in_its_bins() -> None:
    """A search's bins take any mixture: whether the study is one is judged on its own trials
    (a proposal's name is not a search's), and its proposals stay in."""
    rng = np.random.default_rng(0)
    n = 30
    df = pd.DataFrame(
        {
            "trial": range(n + 4),
            "state": "COMPLETE",
            "mixture": [f"search{i}-v{i}" for i in range(n)]
            + [f"prop30-{i}-v900-s0" for i in range(4)],
            "volume": [*rng.uniform(100, 10_000, n).round(), 900, 900, 900, 900],
            "balance": rng.uniform(0, 1, n + 4),
            "seed": 0,
            "value": rng.normal(0, 1, n + 4),
            "proposed_by": [""] * n + ["gp"] * 4,
        }
    )
    rows, _, searched = design_trials(df)
    assert searched and len(rows) == n + 4
    # a grid with the same proposals leaves them out
    grid = df.iloc[n:].copy()
    grid = pd.concat([_grid_rows(), grid], ignore_index=True)
    rows, _, searched = design_trials(grid)
    assert not searched and not proposed(rows).any()


def _grid_rows() -> pd.DataFrame:
    cells = [(v, b, s) for v in (100, 1000) for b in (0.4, 1.0) for s in (0, 1)]
    return pd.DataFrame(
        {
            "trial": range(100, 100 + len(cells)),
            "state": "COMPLETE",
            "mixture": [f"v{v}-b{b:.2f}-s{s}" for v, b, s in cells],
            "volume": [float(v) for v, _, _ in cells],
            "balance": [b for _, b, _ in cells],
            "seed": [s for _, _, s in cells],
            "value": np.linspace(0, 1, len(cells)),
            "proposed_by": "",
        }
    )


def test_balance_levels_never_print_alike() -> None:
    """Levels 0.993 and 0.994 (a design's, or a Dirichlet grid's) print with 3 decimals, the
    rest with 2; the legend, the heatmap and the verdict's lines use the same labels."""
    assert [bal(b) for b in (0.4, 0.7, 1.0, 0.993, 0.994, 0.99, 0.0, float("nan"))] == [
        "0.40", "0.70", "1.00", "0.993", "0.994", "0.99", "0.00", "-",
    ]  # fmt: skip
    cells = [(v, b, s) for v in (100, 1000) for b in (0.99, 0.993, 0.994, 1.0) for s in (0, 1)]
    df = pd.DataFrame(
        {
            "trial": range(len(cells)),
            "state": "COMPLETE",
            "mixture": [f"v{v}-{b}-s{s}" for v, b, s in cells],
            "volume": [float(v) for v, _, _ in cells],
            "balance": [b for _, b, _ in cells],
            "seed": [s for _, _, s in cells],
            "value": np.random.default_rng(0).normal(0, 1, len(cells)),
        }
    )
    df.attrs.update(metric="score", direction="maximize", study="close")
    plt = load_pyplot()
    fig, ax = plt.subplots()
    _curves(ax, cell_stats(df), True)
    labels = ax.get_legend_handles_labels()[1]
    plt.close(fig)
    assert labels == ["0.99", "0.993", "0.994", "1.00"]
    lines = [s for s in analyse(df).statements() if s.startswith("Balance ")]
    assert [s.split(":")[0] for s in lines] == [f"Balance {x}" for x in labels]


def test_a_grid_whose_own_trials_all_failed_says_so() -> None:
    """Only the proposals completed: no cell of the design has a score, and the error says why
    rather than analysing the proposals as the grid."""
    grid = _grid_rows().assign(state="FAIL", value=np.nan)
    props = grid.iloc[:2].assign(
        trial=[200, 201], state="COMPLETE", mixture=["prop8-0-v1000-s0", "prop8-0-v1000-s1"],
        balance=0.9, value=[0.5, 0.6], proposed_by="gp",
    )  # fmt: skip
    df = pd.concat([grid, props], ignore_index=True)
    df.attrs.update(metric="score", direction="maximize", study="s")
    with pytest.raises(UserError, match="no completed trial of its design, only trials `ablate"):
        analyse(df)
