"""Reading a study back, the mixture effect and the volume plot, on a python-objective sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ablate.analysis import load, mixture_effect, mixture_table, plot_volume_balance
from ablate.errors import UserError


def test_table_effect_and_plot(make_job: Any, ray_session: Any, tmp_path: Path) -> None:
    from ablate.sweep import run_sweep

    job = make_job(design={"volumes": [100, 1000], "balance": [0.5, 1.0], "seeds": [0, 1]})
    run_sweep(job, list(job.task_types), progress=None)
    df = load(job)
    assert len(df) == 8 and set(df["state"]) == {"COMPLETE"}
    assert {"p/caption", "p/count", "p/compare", "volume", "balance", "seed", "score"} <= set(
        df.columns
    )
    table = mixture_table(df)
    assert len(table) == 4 and set(table["seeds"]) == {2}
    effect = mixture_effect(df)
    means = df.groupby(["volume", "balance"])["value"].mean()
    assert effect.best_mean == pytest.approx(means.max())
    assert effect.worst_mean == pytest.approx(means.min())
    spread = df.groupby(["volume", "balance"])["value"].agg(lambda v: v.max() - v.min())
    assert effect.max_seed_range == pytest.approx(spread.max())
    png = plot_volume_balance(df, tmp_path / "plot.png")
    assert png.stat().st_size > 10_000


def test_missing_study_is_a_clear_error(make_job: Any) -> None:
    with pytest.raises(UserError, match="no study `test-study`"):
        load(make_job())
