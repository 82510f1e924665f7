"""ablate.analysis: the tidy table, bootstrap intervals, the "less is more" verdict, surrogates.

(The verdict's own tests, on hand-built tables with a known answer: test_verdict.py.)

Studies are built directly in a tmp_path SQLite storage with `optuna.trial.create_trial`,
carrying the user attributes the sweep writes, on landscapes with a known answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from ablate.analysis import (
    analyse,
    load,
    mixture_effect,
    mixture_table,
    plot_volume_balance,
    t_interval,
)
from ablate.design import proportions_for_balance
from ablate.errors import UserError

TYPES = ["caption", "count", "compare"]


def peak_at_5000(props: dict[str, float], volume: float, seed: int) -> float:
    """A "less is more" landscape: balance helps, the score peaks at 5,000 rows."""
    quality = sum(1 - math.exp(-p / 0.2) for p in props.values()) / 3
    z = math.log(volume / 5000) / 1.5
    return quality * math.exp(-0.5 * z * z)


def grid_study(
    job: Any,
    f: Callable[[dict[str, float], float, int], float],
    volumes: tuple[float, ...] = (1000, 5000, 20000),
    balances: tuple[float, ...] = (0.5, 1.0),
    seeds: tuple[int, ...] = (0, 1, 2, 3),
    noise: float = 0.005,
    direction: Literal["minimize", "maximize"] = "maximize",
) -> Any:
    """A grid study in the job's storage: value = f + Gaussian seed noise (seeded, repeatable)."""
    import optuna

    from ablate.analysis.load import result_trial

    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction=direction)
    rng = np.random.default_rng(0)
    for v in volumes:
        for b in balances:
            props = proportions_for_balance(TYPES, b)
            for s in seeds:
                value = f(props, v, s) + rng.normal(0, noise)
                metrics = {"score": value, "accuracy/arts": value / 2, "bench_loss": 2 - value}
                name = f"v{v:g}-b{b:.2f}-s{s}"
                study.add_trial(result_trial(props, v, s, name, value, metrics, 2.0))
    return study


def test_table_effect_and_plot(make_job: Any, ray_session: Any, tmp_path: Path) -> None:
    from ablate.sweep import run_sweep

    job = make_job(design={"volumes": [100, 1000], "balance": [0.5, 1.0], "seeds": [0, 1]})
    run_sweep(job, list(job.task_types), progress=None)
    df = load(job)
    assert len(df) == 8 and set(df["state"]) == {"COMPLETE"}
    assert {"p/caption", "p/count", "p/compare", "volume", "balance", "seed", "score"} <= set(
        df.columns
    )
    assert {"seconds", "duration", "gpus", "gpu_seconds"} <= set(df.columns)
    # gpus_per_trial 0 in the job: GPU-seconds are 0, not unknown
    assert (df["gpu_seconds"] == 0).all() and (df["duration"] >= 0).all()
    table = mixture_table(df)
    assert len(table) == 4 and set(table["seeds"]) == {2}
    effect = mixture_effect(df)
    means = df.groupby(["volume", "balance"])["value"].mean()
    assert effect.best_mean == pytest.approx(means.max())
    assert effect.worst_mean == pytest.approx(means.min())
    spread = df.groupby(["volume", "balance"])["value"].agg(lambda v: v.max() - v.min())
    assert effect.max_seed_range == pytest.approx(spread.max())
    assert effect.mixtures == 4 and effect.df_within == 4  # 8 trials - 4 mixtures
    png = plot_volume_balance(df, tmp_path / "plot.png")
    assert png.stat().st_size > 10_000


def test_missing_study_is_a_clear_error(make_job: Any) -> None:
    with pytest.raises(UserError, match="no study `test-study`"):
        load(make_job())


def test_t_interval_uses_the_pooled_sd_and_its_degrees_of_freedom() -> None:
    from scipy.stats import t

    lo, hi = t_interval([0.5, 1.0], [2, 1], sd=0.1, df=9)
    half = t.ppf(0.975, 9) * 0.1
    assert lo == pytest.approx([0.5 - half / math.sqrt(2), 1.0 - half])
    assert hi == pytest.approx([0.5 + half / math.sqrt(2), 1.0 + half])
    assert np.isnan(t_interval([0.3], [1], sd=math.nan, df=0)[0]).all()  # noise unknown


def test_less_is_more_holds_on_a_peaked_landscape(make_job: Any) -> None:
    job = make_job()
    grid_study(job, peak_at_5000)
    df = load(job)
    assert len(df) == 24 and df.attrs["metric"] == "score"
    f = analyse(df)
    assert f.verdict == "holds"
    assert [r.status for r in f.per_level] == ["holds", "holds"]
    # effect = score(5000) - score(20000), averaged over both balance levels; noise sd 0.005
    truth = np.mean(
        [
            peak_at_5000(proportions_for_balance(TYPES, b), 5000, 0)
            - peak_at_5000(proportions_for_balance(TYPES, b), 20000, 0)
            for b in (0.5, 1.0)
        ]
    )
    assert f.overall.best_volume == 5000 and f.overall.largest_volume == 20000
    assert f.overall.effect == pytest.approx(truth, abs=0.01)
    assert f.overall.low is not None and f.overall.high is not None
    assert f.overall.effect is not None
    # SE = noise / sqrt(4 seeds) per cell, x sqrt(2) for a difference of two cells, / sqrt(2)
    # for the mean over two balance levels = 0.0025 (here with the seed SD estimated on 18 df)
    assert abs(f.overall.effect - truth) < 3 * 0.0025
    best = next(c for c in f.overall.comparisons if c.volume == 5000)
    assert 0.5 < best.se / 0.0025 < 1.5 and f.overall.df == 24 - 6
    # the verdict's bound is the simultaneous one: effect - q * SE, q above the one-test 1.73
    assert f.overall.quantile is not None and f.overall.quantile > 1.73
    assert f.overall.low == pytest.approx(f.overall.effect - f.overall.quantile * best.se)
    assert f.overall.low > 0 and f.alpha == 0.05
    # balance helps at every volume, beyond noise
    assert all(b.diff > 0 and b.low is not None and b.low > 0 for b in f.balance)
    text = "\n".join(f.statements())
    assert "HOLDS" in text and "balance helps beyond seed noise" in text


def test_less_is_more_does_not_hold_when_more_is_better(make_job: Any) -> None:
    job = make_job()
    grid_study(job, lambda p, v, s: 0.1 * math.log(v))
    f = analyse(load(job))
    assert f.verdict == "does not hold"
    assert f.overall.effect == pytest.approx(-0.1 * math.log(4), abs=0.01)  # 5000 vs 20000
    assert f.overall.high is not None and f.overall.high < 0


def test_within_noise_cannot_be_decided(make_job: Any) -> None:
    job = make_job()
    # 5000 beats 20000 by 0.002, seed noise sd 0.05 over 4 seeds: not decidable
    grid_study(job, lambda p, v, s: 0.5 + (0.002 if v == 5000 else 0.0), noise=0.05)
    f = analyse(load(job))
    assert f.overall.low is not None and f.overall.low < 0 < f.overall.high  # type: ignore[operator]
    assert f.verdict in ("cannot be decided", "does not hold")
    if f.overall.effect and f.overall.effect > 0:
        assert f.verdict == "cannot be decided" and "within seed noise" in f.overall.reason


def test_one_seed_draws_no_interval(make_job: Any, tmp_path: Path) -> None:
    job = make_job()
    grid_study(job, peak_at_5000, seeds=(0,))
    df = load(job)
    f = analyse(df)
    assert f.verdict == "cannot be decided"
    assert f.overall.low is None and "no interval can be drawn" in f.overall.reason
    assert f.cells.table["low"].isna().all()
    assert any("one seed only" in s for s in f.statements())
    png = plot_volume_balance(df, tmp_path / "v.png", cells=f.cells)
    assert png.is_file()


def test_minimize_flips_the_verdict(make_job: Any) -> None:
    job = make_job(objective={"direction": "minimize"})
    grid_study(job, lambda p, v, s: 1 - peak_at_5000(p, v, s), direction="minimize")
    f = analyse(load(job))
    assert f.direction == "minimize" and f.verdict == "holds"
    assert f.overall.best_volume == 5000 and f.overall.effect is not None
    assert f.overall.effect > 0.2  # in "better" units: the loss is lower by about 0.23


def _study_with(job: Any, trials: list[Any]) -> None:
    import optuna

    study = optuna.create_study(study_name=job.study, storage=job.storage_url)
    for t in trials:
        study.add_trial(t)


def test_bad_studies_are_clear_errors(make_job: Any, tmp_path: Path) -> None:
    import optuna
    from optuna.trial import TrialState, create_trial

    empty = make_job(study="empty")
    _study_with(empty, [])
    with pytest.raises(UserError, match="no trials yet; run `ablate sweep"):
        analyse(load(empty))

    attrs = {"proportions": {"a": 1.0}, "volume": 10, "seed": 0, "balance": 0.0}
    failed = make_job(study="failed")
    _study_with(
        failed,
        [
            create_trial(state=TrialState.FAIL, user_attrs={**attrs, "error": "CUDA out of memory"})
            for _ in range(2)
        ],
    )
    with pytest.raises(UserError, match=r"no completed trials \(fail 2\); first error: CUDA out"):
        analyse(load(failed))

    job = make_job(study="ok")
    _study_with(job, [create_trial(value=1.0, user_attrs={**attrs, "metrics": {"score": 1.0}})])
    with pytest.raises(UserError, match=r"metric `bleu` is not recorded.*score"):
        analyse(load(job), "bleu")

    foreign = make_job(study="foreign")
    _study_with(
        foreign,
        [
            create_trial(
                value=0.3,
                params={"x": 1.0},
                distributions={"x": optuna.distributions.FloatDistribution(0, 2)},
            )
        ],
    )
    with pytest.raises(UserError, match="not made by `ablate sweep`"):
        load(foreign)

    not_optuna = tmp_path / "other.db"
    import sqlite3

    with sqlite3.connect(not_optuna) as con:
        con.execute("create table experiments (id integer)")
    other = make_job(storage=f"sqlite:///{not_optuna}")
    with pytest.raises(UserError, match=r"cannot be read as an Optuna storage|no study"):
        load(other)


def test_sqlite_read_equals_the_optuna_read(make_job: Any, monkeypatch: Any) -> None:
    """`load` reads an Optuna SQLite file directly; the table equals the one Optuna gives."""
    import importlib

    import pandas as pd
    from optuna.trial import TrialState, create_trial

    # the module, not the function `ablate.analysis.load` that shadows it
    load_module = importlib.import_module("ablate.analysis.load")
    trial_rows = importlib.import_module("ablate.study.trial_rows")

    other = make_job(study="other")  # a second study in the same file must not leak in
    _study_with(other, [create_trial(value=9.0, user_attrs={"proportions": {"a": 1.0}})])
    job = make_job(study="mixed")
    attrs = {"proportions": {"a": 0.25, "b": 0.75}, "volume": 10, "seed": 0, "balance": 0.8}
    _study_with(
        job,
        [
            create_trial(value=0.5, user_attrs={**attrs, "metrics": {"score": 0.5}, "gpus": 2}),
            create_trial(value=math.inf, user_attrs={**attrs, "seconds": 3.0}),
            create_trial(state=TrialState.FAIL, user_attrs={**attrs, "error": "boom"}),
            create_trial(state=TrialState.RUNNING, user_attrs={"proportions": {"c": 1.0}}),
        ],
    )
    assert trial_rows._read_sqlite(job) is not None
    fast = load(job)
    monkeypatch.setattr(load_module, "read_trial_rows", lambda job: None)
    slow = load(job)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast.attrs == slow.attrs and list(fast["state"]) == [
        "COMPLETE",
        "COMPLETE",
        "FAIL",
        "RUNNING",
    ]


def test_failed_trials_are_counted_once_per_trial_and_point_requeued_apart() -> None:
    import pandas as pd

    from ablate.analysis.findings import failures

    df = pd.DataFrame(
        {
            "state": ["FAIL", "COMPLETE", "FAIL", "FAIL", "FAIL", "COMPLETE"],
            "mixture": ["a-s0", "a-s0", "b-s0", "b-s0", "c-s0", "c-s1"],
            "requeued": [True, False, False, False, True, False],
            "error": [None, None, "OOM\ntrace", "OOM again", "driver died", None],
        }
    )
    # a-s0: a dead driver's (requeued), then completed; b-s0 failed twice and never completed;
    # c-s0: requeued, its copy not run yet
    f = failures(df)
    assert (f.trials, f.points, f.rerun, f.requeued) == (2, 1, 0, 2)
    assert f.left_out == (("b-s0", 2, "OOM"),)
    assert f.summary() == "2 failed trial(s) at 1 design point(s), 2 requeued"
    text = " ".join(f.describe())
    assert "b-s0 (2 failed; first error: OOM)" in text and "requeued" in text
    assert failures(df[df["state"] == "COMPLETE"]).summary() == "no failed trial"


def test_cell_intervals_stay_inside_the_metrics_range(make_job: Any, tmp_path: Path) -> None:
    """An accuracy near 0 with a wide seed spread: its interval stops at 0 (before: bars below
    0 in volume_balance.png); another column than the one `range` is of is left as it is; a
    domains plot where every score is 0 gets a readable axis."""
    from ablate.analysis.plots import plot_domains
    from ablate.analysis.stats import cell_stats

    job = make_job()
    grid_study(
        job, lambda props, volume, seed: 0.12 if seed == 2 else 0.0, seeds=(0, 1, 2), noise=0.0
    )
    df = load(job)
    df.attrs["range"] = (0.0, 1.0)
    cells = cell_stats(df).table
    assert (cells["low"] >= 0.0).all() and (cells["low"] == 0.0).any()
    assert (cells["high"] <= 1.0).all()
    unbounded = cell_stats(df.assign(other=df["value"]), "other").table
    assert (unbounded["low"] < 0.0).any()  # `range` is of `value`, not of `other`
    zero = df.assign(**{"accuracy/arts": 0.0})
    out = plot_domains(zero, tmp_path / "domains.png")
    assert out is not None and out.stat().st_size > 5_000


def _mixture_study(rng: Any, shift: float, direction: str = "maximize") -> Any:
    """9 mixtures x 2 seeds (seed SD 0.01), the one at 4000 rows and balance 1.0 `shift` higher."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for v in (1000, 4000, 16000):
        for b in (0.4, 0.7, 1.0):
            for seed in (0, 1):
                mean = 0.6 + (shift if (v, b) == (4000, 1.0) else 0.0)
                rows.append(
                    {"trial": len(rows), "state": "COMPLETE", "volume": v, "balance": b,
                     "seed": seed, "mixture": f"v{v}-b{b:.2f}", "p/a": b, "p/b": 1 - b,
                     "value": mean + 0.01 * rng.standard_normal(), "seconds": 1.0,
                     "gpu_seconds": 0.0, "model": "", "settings": ""}
                )  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs.update(direction=direction, metric="value", task_types=["a", "b"])
    return df


def test_mixture_effect_knows_a_loss_and_is_an_f_test() -> None:
    """Before: for a loss the highest mean was called best, and 'a real mixture effect' meant a
    gap over 3x the largest seed range (24% power at 5 seed SDs)."""
    from scipy.stats import f_oneway

    rng = np.random.default_rng(0)
    loss = _mixture_study(rng, -0.05, "minimize")
    effect = mixture_effect(loss)
    assert effect.best.startswith("v4000-b1.00") and effect.best_mean < 0.56
    groups = [g["value"].to_numpy() for _, g in loss.groupby("mixture")]
    assert effect.p_value == pytest.approx(f_oneway(*groups).pvalue)
    assert "differ by more than seed noise" in effect.describe("loss")
    said = [mixture_effect(_mixture_study(rng, 0.0)).p_value < 0.05 for _ in range(100)]
    assert sum(said) <= 12  # 5% expected; 12 of 100 has chance 0.5% under a true 5%
    found = [mixture_effect(_mixture_study(rng, 0.05)).p_value < 0.05 for _ in range(40)]
    assert sum(found) >= 32  # 93% expected at 5 seed SDs
