"""Seed noise from replicates of the same mixture, when a cell holds several mixtures.

A random design's balances are binned into quartiles and a lattice's corners share balance 0:
such a cell holds different mixtures, and their differences are no seed noise. The verdict,
the plots' bars and `ablate plan`'s pilot pool the seed SD over replicates of one mixture."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_analysis import TYPES, peak_at_5000

from ablate.analysis import load
from ablate.analysis.contrasts import noise
from ablate.analysis.findings import analyse
from ablate.analysis.load import result_trial
from ablate.analysis.plan_seeds import pilot_noise
from ablate.analysis.stats import cell_stats, study_design

SEED_SD = 0.01


def fixed_study(
    job: Any,
    mixtures: list[dict[str, float]],
    seeds: int,
    name: str,
    step: float = 0.0,
    failed: frozenset[str] = frozenset(),
) -> None:
    """Every mixture at 1,000 and 5,000 rows, `seeds` seeds each, seed noise SD 0.01; mixture
    i scores `step` x i more than the landscape says (for mixtures the landscape ties); the
    trials named in `failed` fail."""
    import optuna
    from optuna.trial import TrialState

    rng = np.random.default_rng(7)
    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction="maximize")
    for volume in (1000, 5000):
        for i, props in enumerate(mixtures):
            for seed in range(seeds):
                value = peak_at_5000(props, volume, seed) + step * i + rng.normal(0, SEED_SD)
                label = f"v{volume}-{name}{i}-s{seed}"
                trial = result_trial(props, volume, seed, label, value, {"score": value}, 1)
                if label in failed:
                    attrs = {k: v for k, v in trial.user_attrs.items() if k != "metrics"}
                    trial = optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=attrs)
                study.add_trial(trial)


def random_mixtures(n: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(3)
    return [dict(zip(TYPES, rng.dirichlet(np.ones(3)).tolist(), strict=True)) for _ in range(n)]


def test_a_random_design_with_seeds_is_tested_on_its_seed_noise(make_job: Any) -> None:
    # 20 mixtures x 2 volumes x 3 seeds: 20 balances, binned into quartiles (5 mixtures a bin)
    job = make_job(design={"kind": "grid", "volumes": [1000, 5000], "seeds": [0, 1, 2]})
    fixed_study(job, random_mixtures(20), seeds=3, name="rand")
    df = load(job)
    d = study_design(df)
    assert not d.searched and d.mixtures_per_cell == 5
    # 120 trials - 40 mixtures; the SD of 80 df lies within 0.01 x (1 +- 0.25) but for 1 in 10^4
    assert d.noise.pooled_df == 80
    assert d.noise.pooled_sd == pytest.approx(SEED_SD, rel=0.25)
    # pooled within the bins instead, the mixtures' differences count as noise: 0.029 here
    assert noise(d.cells, 0.0).pooled_sd > 2.5 * SEED_SD
    cells = cell_stats(df)
    assert not cells.searched and cells.sd == pytest.approx(d.noise.pooled_sd)
    assert "seed SD" in cells.describe() and "not seed noise" not in cells.describe()
    assert cells.describe().endswith("; 15 trials per cell over its mixtures)")
    f = analyse(df)
    headline = f.headline()
    # the landscape peaks at 5,000 rows: "less is more" does not hold, beyond seed noise
    assert "DOES NOT HOLD" in headline and "search" not in headline
    assert "(2 volumes x 4 balance levels, 15 trials per cell over its mixtures = 120 trials)" in (
        f.detectable
    )
    assert "up to 5 mixtures" in f.method and "Balance: not tested" in f.method
    # its bins hold different random mixtures: no balance test, and the notes say why
    assert f.balance == [] and any(
        n.startswith("Balance: the balance levels are bins") for n in f.notes
    )
    # `ablate plan` sizes a grid on this pilot's seed noise, not on the bins' spread
    sd, where = pilot_noise(job, None)
    assert sd == pytest.approx(d.noise.pooled_sd) and "80 df" in where


def test_corners_of_equal_balance_are_not_pooled_into_seed_noise(make_job: Any) -> None:
    # corners: three mixtures at balance 0, one cell per volume; their scores 0.05 apart
    corners = [dict.fromkeys(TYPES, 0.0) | {t: 1.0} for t in TYPES]
    job = make_job(design={"kind": "grid", "volumes": [1000, 5000], "seeds": [0, 1, 2, 3]})
    fixed_study(job, corners, seeds=4, name="corner", step=0.05)
    d = study_design(load(job))
    assert d.mixtures_per_cell == 3 and len(d.cells.keys) == 2
    assert d.noise.pooled_df == 24 - 6
    assert d.noise.pooled_sd == pytest.approx(SEED_SD, rel=0.4)
    assert noise(d.cells, 0.0).pooled_sd > 3 * SEED_SD


def test_a_grid_keeps_one_mixture_per_cell(make_job: Any) -> None:
    # a grid's cell is one mixture: the replicate noise is the cell noise, exactly as before
    mixtures = [
        {"caption": 0.9, "count": 0.05, "compare": 0.05},
        {"caption": 0.5, "count": 0.25, "compare": 0.25},
        dict.fromkeys(TYPES, 1 / 3),
    ]
    job = make_job(design={"kind": "grid", "volumes": [1000, 5000], "seeds": [0, 1]})
    fixed_study(job, mixtures, seeds=2, name="b")
    d = study_design(load(job))
    assert d.mixtures_per_cell == 1 and not d.searched
    assert d.noise.pooled_sd == pytest.approx(noise(d.cells, 0.0).pooled_sd)
    assert d.noise.pooled_df == 12 - 6


def test_failed_trials_leave_each_level_with_the_same_mixtures_at_every_volume(
    make_job: Any,
) -> None:
    # mixtures 0.05 apart (5 seed SDs); mixture 0 loses a seed at 5,000 rows and mixture 1 all
    # three at 1,000: a level's cell means would then weigh its mixtures differently at the
    # two volumes, and their differences would pass for a volume effect
    lost = frozenset({"v5000-rand0-s0", "v1000-rand1-s0", "v1000-rand1-s1", "v1000-rand1-s2"})
    job = make_job(design={"kind": "grid", "volumes": [1000, 5000], "seeds": [0, 1, 2]})
    fixed_study(job, random_mixtures(12), seeds=3, name="rand", step=0.05, failed=lost)
    df = load(job)
    assert (df["state"] == "FAIL").sum() == 4
    d = study_design(df)
    assert d.mixtures_per_cell > 1 and not d.searched
    # mixture 0: 2 kept at each volume (1 left out at 1,000); mixture 1 leaves its level (3)
    assert d.unbalanced == 1 + 3
    assert int(d.cells.n.sum()) == 72 - 4 - 4
    # the noise keeps every completed trial: 68 trials, 23 mixture x volume groups
    assert d.noise.pooled_df == 68 - 23
    f = analyse(df)
    (note,) = [n for n in f.notes if "left out of the volume x balance cells" in n]
    assert note.startswith("4 completed trials left out") and "failed trials left" in note
    assert "retries failed trials" in note
