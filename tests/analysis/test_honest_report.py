"""What the report claims is true (the analysis review, /tmp/review-analysis/FINDINGS.md):
recommendations only with held-out skill and a gain above the noise, per-comparison outcomes,
error bars with their stated coverage, direction-aware words, consistent failure counts.

Tables are built in memory (no storage): grids of 3 task types with seeded noise."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from ablate.analysis import analyse, cell_stats, fit_surrogates, mixture_table
from ablate.analysis.findings import detectable_text
from ablate.analysis.plan_seeds import plan_text
from ablate.analysis.recommend import hull_or_simplex, recommend, skill_threshold
from ablate.analysis.verdict import study_design
from ablate.analysis.words import gain, next_seeds, signed
from ablate.design import proportions_for_balance
from ablate.errors import UserError
from ablate.sweep.status import failure_lines

TYPES = ["a", "b", "c"]
VOLUMES = (1000, 4000, 16000)
BALANCES = (0.4, 0.7, 1.0)


def grid_table(
    rng: np.random.Generator,
    f: Any = lambda v, b: 0.6,
    seeds: int = 2,
    sd: float = 0.02,
    direction: str = "maximize",
) -> Any:
    """A 3 volumes x 3 balance levels x `seeds` grid, value = f(volume, balance) + N(0, sd)."""
    import pandas as pd

    rows = []
    for v in VOLUMES:
        for b in BALANCES:
            props = proportions_for_balance(TYPES, b)
            for s in range(seeds):
                rows.append(
                    {
                        "trial": len(rows),
                        "state": "COMPLETE",
                        "value": f(v, b) + rng.normal(0, sd),
                        "mixture": f"v{v}-b{b:.2f}-s{s}",
                        "volume": float(v),
                        "balance": b,
                        "seed": s,
                        **{f"p/{t}": props[t] for t in TYPES},
                    }
                )
    df = pd.DataFrame(rows)
    df.attrs.update(metric="score", direction=direction, study="sim", task_types=TYPES)
    return df


def test_null_studies_rarely_claim_a_proposal_beats_the_best_tried() -> None:
    # nothing matters: every claim is false (the review measured 11 of 30 before the fix)
    rng = np.random.default_rng(11)
    claims = 0
    for _ in range(6):
        sur = fit_surrogates(grid_table(rng), models=["loglinear", "gp"])
        rec = recommend(sur, n=1, n_boot=30)
        claims += rec.beats
        assert rec.observed == pytest.approx(max(sur.data.y.reshape(9, 2).mean(axis=1)))
        if not rec.beats:
            assert rec.recommended is rec.best_tried
            assert "No proposal is expected to beat the best tried" in rec.statement("score")
    assert claims == 0


def test_a_surrogate_without_held_out_skill_claims_nothing() -> None:
    sur = fit_surrogates(grid_table(np.random.default_rng(2)), models=["loglinear"])
    sur.cv["loglinear"].spearman = 0.1  # below 1.645 / sqrt(8) = 0.58 for 9 mixtures
    rec = recommend(sur, n=1, n_boot=20)
    assert skill_threshold(9) == pytest.approx(1.645 / math.sqrt(8))
    assert skill_threshold(60) == pytest.approx(0.214, abs=1e-3)
    assert not rec.beats
    text = rec.statement("score")
    assert "has no held-out skill" in text and "0.10, not above 0.58" in text
    assert "cannot tell whether any untried mixture is better" in text
    sur.cv["loglinear"].spearman = math.nan  # constant scores: no ranking to hold out
    text = recommend(sur, n=1, n_boot=20).statement("score")
    assert "held-out Spearman is undefined (constant scores)" in text and "nan" not in text


def test_a_grid_proposes_only_inside_its_tried_shares() -> None:
    # a grid's shares lie on a line (b = c); off it, or beyond the uniform end, no trial varied
    tried = np.array([list(proportions_for_balance(TYPES, b).values()) for b in BALANCES])
    q = hull_or_simplex(np.repeat(tried, 2, axis=0), 500, np.random.default_rng(0))
    assert np.allclose(q[:, 1], q[:, 2])
    assert q[:, 0].min() >= tried[:, 0].min() - 1e-6 and q[:, 0].max() <= tried[:, 0].max() + 1e-6
    full = hull_or_simplex(
        np.random.default_rng(1).dirichlet(np.ones(3), 20), 500, np.random.default_rng(0)
    )
    assert not np.allclose(full[:, 1], full[:, 2])  # a searched study: the whole simplex


def test_a_loss_grid_with_its_optimum_tried_claims_nothing_and_says_lower() -> None:
    # the review's loss study: lowest at 4,000 rows and the uniform mixture (tried)
    def loss(v: float, b: float) -> float:
        return 1.0 - 0.2 * b + {1000: 0.05, 4000: -0.10, 16000: 0.0}[int(v)]

    df = grid_table(np.random.default_rng(5), loss, sd=0.005, direction="minimize")
    rec = recommend(fit_surrogates(df), volume=4000, n=3, n_boot=30)
    assert not rec.beats and rec.best_tried.volume == 4000
    assert rec.best_tried.proportions == pytest.approx(dict.fromkeys(TYPES, 1 / 3))
    for p in rec.proposals:  # never the tried mixture itself, never off the grid's line
        assert p.proportions["b"] == pytest.approx(p.proportions["c"], abs=2e-3)
        assert p.distance > 0 or p.volume != 4000
    f = analyse(df)
    assert f.overall.status == "holds"
    assert "0.098 lower score (better), above seed noise" in f.overall.reason


def test_each_comparison_gets_its_own_outcome() -> None:
    # 1,000 rows clearly worse than 16,000, 4,000 clearly better: the family holds
    df = grid_table(np.random.default_rng(3), lambda v, b: {1000: 0.5, 4000: 0.7}.get(v, 0.6))
    f = analyse(df)
    assert f.overall.status == "holds"
    outcomes = {c.volume: c.outcome for c in f.overall.comparisons}
    assert outcomes == {1000.0: "larger better", 4000.0: "smaller better"}
    null = analyse(grid_table(np.random.default_rng(4), sd=0.05))
    assert {c.outcome for c in null.overall.comparisons} <= {"within noise", "smaller better"}


def test_cell_intervals_cover_their_stated_95_percent() -> None:
    rng = np.random.default_rng(7)
    hits, total = 0, 0
    for _ in range(150):
        cells = cell_stats(grid_table(rng, sd=1.0))
        t = cells.table
        hits += int(((t["low"] <= 0.6) & (t["high"] >= 0.6)).sum())
        total += len(t)
    assert 0.93 <= hits / total <= 0.97  # a per-cell bootstrap of 2 seeds covered 62%
    assert cells.df == 9
    said = cells.describe()  # (the last study's volumes differed by chance: the wider bars)
    assert said.startswith(f"95% t interval per cell (seed SD pooled {cells.sd:.3g}, 9 df")
    assert said.endswith("; 2 seeds per cell)")
    pooled = cell_stats(grid_table(np.random.default_rng(0), sd=1.0))
    assert pooled.per_volume == "" and pooled.describe() == (
        f"95% t interval per cell (pooled seed SD {pooled.sd:.3g}, 9 df; 2 seeds per cell)"
    )


def test_a_bad_or_far_volume_is_named() -> None:
    sur = fit_surrogates(grid_table(np.random.default_rng(0)), models=["loglinear"])
    for bad in (0.0, -5.0, math.nan):
        with pytest.raises(UserError, match="--volume"):
            recommend(sur, volume=bad)
    rec = recommend(sur, volume=1_000_000, n=1, n_boot=10)
    assert rec.notes and "62x the largest tried volume (16,000 rows)" in rec.notes[0]
    assert "volume not counted" in rec.best_tried.describe("score")


def test_the_power_sentence_states_the_design_as_run() -> None:
    df = grid_table(np.random.default_rng(0), seeds=3)
    df.loc[[0, 4, 8], ["state", "value"]] = ["FAIL", math.nan]  # one seed of 3 cells failed
    text = detectable_text(study_design(df), 0.05)
    assert "3 volumes x 3 balance levels x 3 seeds = 27 trials, 24 completed" in text
    assert "fewest completed seeds in a cell (2)" in text


def test_failures_are_counted_alike_in_the_report_status_and_mixture_table() -> None:
    df = grid_table(np.random.default_rng(0), seeds=2)
    df.loc[[0, 1], ["state", "value"]] = ["FAIL", math.nan]
    df["error"] = None
    df.loc[[0, 1], "error"] = ["RuntimeError: CUDA out of memory\ntrace", "returned NaN"]
    f = analyse(df)
    assert f.failures.summary() == "2 failed trial(s) at 2 design point(s)"
    assert any("v1000-b0.40-s0 (1 failed; first error: RuntimeError: CUDA" in n for n in f.notes)
    table = mixture_table(df)
    assert table.loc["v1000-b0.40", "failed"] == 2 and table.loc["v1000-b0.40", "seeds"] == 0
    assert table["failed"].sum() == 2
    trials = [
        SimpleNamespace(number=i, state=SimpleNamespace(name=s), user_attrs=a)
        for i, (s, a) in enumerate(
            [
                ("FAIL", {"mixture_name": "m-s0", "error": "boom\nline 2"}),
                ("FAIL", {"mixture_name": "m-s0", "requeued": True}),
                ("COMPLETE", {"mixture_name": "m-s1"}),
            ]
        )
    ]
    lines = failure_lines(trials)
    assert (
        lines[0]
        == "  failed: 1 trial(s) at 1 design point(s); 1 requeued (a stopped driver's, run again)"
    )
    assert lines[1:] == ["    trial 0 m-s0: boom"]


def test_words_are_direction_aware_and_keep_their_sign() -> None:
    assert gain(0.102, "loss", -1.0) == "0.102 lower loss (better)"
    assert gain(-0.01, "score", 1.0) == "0.010 lower score (worse)"
    assert gain(0.0, "score", 1.0) == "no different in score"  # not "0.000 no different in"
    assert signed(0.00036) == "+0.00036" and signed(-0.0123) == "-0.012"
    assert "`design.seeds: [0, 1, 2, 3]`" in next_seeds(3)
    assert "`design.seeds: [0, 1, 2]`" in next_seeds(1)


def test_headline_names_the_model_and_warns_of_per_level_multiplicity() -> None:
    df = grid_table(np.random.default_rng(0))
    df.attrs["group"] = "model big"
    f = analyse(df)
    assert f.headline().startswith('Model big: "Less is more"')
    assert "each level is its own test at 5%" in f.headline()
    assert any("has mean score" in s for s in f.statements())
    assert not any(" score and the least" in s for s in f.statements())


def test_plan_says_its_power_is_lower_with_few_seeds(make_job: Any) -> None:
    two = make_job(
        design={"volumes": [1000, 4000, 16000], "balance": [0.4, 0.7, 1.0], "seeds": [0, 1]}
    )
    assert "76% with 2 seeds" in plan_text(two, noise=0.02)
    five = make_job(
        design={"volumes": [1000, 4000, 16000], "balance": [0.4, 0.7, 1.0], "seeds": list(range(5))}
    )
    assert "Note:" not in plan_text(five, noise=0.02)


def test_unknown_metric_lists_only_metrics() -> None:
    df = grid_table(np.random.default_rng(0))
    df["accuracy/x"] = 0.5
    with pytest.raises(UserError, match=r"choose one of: accuracy/x, value$"):
        cell_stats(df, "nope")


def test_predictions_stay_inside_the_metrics_range() -> None:
    """An accuracy that rises steeply toward a corner: the surrogates extrapolate past 1 there;
    with the objective kind's range [0, 1] (`df.attrs["range"]`) the recommendation, its
    bootstrap interval and `propose` never promise more than 1."""
    import pandas as pd

    from ablate.objectives import metric_range

    rng = np.random.default_rng(0)
    shares = rng.dirichlet(np.ones(3), 24)
    rows = [
        {"trial": i, "state": "COMPLETE", "value": 0.62 + 0.45 * p[0] + rng.normal(0, 0.005),
         "mixture": f"m{i}", "volume": float(v), "balance": 1.0, "seed": 0,
         **{f"p/{t}": float(x) for t, x in zip(TYPES, p, strict=True)}}
        for i, p in enumerate(shares) for v in (2000, 8000)
    ]  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs.update(metric="score", direction="maximize", study="sim", task_types=TYPES)
    free = fit_surrogates(df, models=["loglinear"])
    assert free.propose(volume=8000, n=1)[0].predicted > 1.0  # the plain fit runs past 1
    df.attrs["range"] = (0.0, 1.0)
    kept = fit_surrogates(df, models=["loglinear"])
    (prop,) = kept.propose(volume=8000, n=1)
    assert prop.predicted == pytest.approx(1.0) and prop.high <= 1.0
    assert prop.proportions["a"] > 0.9  # the ranking still reads the model past the bound
    rec = recommend(kept, 8000, n=2)
    for p in [*rec.proposals, rec.best_tried]:
        assert 0.0 <= p.low <= p.predicted <= 1.0 and p.high <= 1.0
    job = SimpleNamespace(source="", objective=SimpleNamespace(kind="train"))
    assert metric_range(job, "overall_accuracy") == (0.0, 1.0)  # type: ignore[arg-type]
    assert metric_range(job, "accuracy/science") == (0.0, 1.0)  # type: ignore[arg-type]
    assert metric_range(job, "judge/logic") == (1.0, 5.0)  # type: ignore[arg-type]
    assert metric_range(job, "bench_loss") == (0.0, math.inf)  # type: ignore[arg-type]
    sim = SimpleNamespace(source="", objective=SimpleNamespace(kind="sim"))
    assert metric_range(sim, "score") == (0.0, 1.0)  # type: ignore[arg-type]
    python = SimpleNamespace(source="", objective=SimpleNamespace(kind="python"))
    assert metric_range(python, "score") == (-math.inf, math.inf)  # type: ignore[arg-type]
