"""Seeds by power: the minimal detectable effect, the seeds an effect needs, `ablate plan`, and
the report's statement of what the study could detect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_analysis import grid_study, peak_at_5000

from ablate.analysis import analyse, load
from ablate.analysis.plan_seeds import plan_text
from ablate.analysis.power import DesignSize, minimal_effect, power, seeds_needed
from ablate.cli import main
from ablate.config import to_dict
from ablate.errors import UserError


def test_power_matches_the_calibration_benchmark_and_grows_with_seeds() -> None:
    # benchmarks/verdict_calibration.py measured 98.0% (96.1-99.0) at 2 SDs with 3 seeds
    assert power(DesignSize(3, 3, 3), effect=2.0, sd=1.0) == pytest.approx(0.98, abs=0.015)
    powers = [power(DesignSize(3, 3, n), 1.0, 1.0) for n in (2, 3, 5, 8)]
    assert powers == sorted(powers) and powers[-1] > 0.8 > powers[0]
    assert power(DesignSize(3, 3, 1), 5.0, 1.0) == 0.0  # one seed: no test, no power


def test_minimal_effect_and_seeds_needed_agree() -> None:
    size = DesignSize(3, 3, 2)
    mde = minimal_effect(size, sd=0.02)
    assert mde is not None and power(size, mde, 0.02) == pytest.approx(0.8, abs=1e-3)
    assert minimal_effect(DesignSize(3, 3, 4), 0.02) < mde  # more seeds, smaller effects
    n = seeds_needed(size, effect=0.02, sd=0.02)
    assert n is not None and n > 2
    assert (
        power(DesignSize(3, 3, n), 0.02, 0.02) >= 0.8 > power(DesignSize(3, 3, n - 1), 0.02, 0.02)
    )
    assert seeds_needed(size, effect=1e-6, sd=1.0) is None
    assert minimal_effect(DesignSize(1, 3, 3), 1.0) is None  # one volume: nothing to compare


def test_plan_from_a_given_noise_and_from_a_pilot_study(make_job: Any, tmp_path: Path) -> None:
    design = {
        "kind": "grid",
        "volumes": [1000, 5000, 20000],
        "balance": [0.5, 1.0],
        "seeds": [0, 1],
    }
    job = make_job(design=design)
    text = plan_text(job, effect=0.02, noise=0.01)
    assert "given: seed SD 0.01" in text and "3 volumes x 2 balance levels x 2 seeds" in text
    assert "It detects a volume effect of" in text and "To detect 0.02 (2.00 seed SDs" in text
    assert "Per model" not in text
    # a job with 3 models runs every point 3 times: the trial counts say so (12 and, with the
    # seeds the effect needs, more), and the power is per model
    models = [{"name": n, "path": "m", "size": s} for n, s in (("a", 1e8), ("b", 1e9), ("c", 7e9))]
    text = plan_text(make_job(design=design, models=models), effect=0.02, noise=0.01)
    assert "once for each of its 3 models (`models:`), 36 and " in text
    assert "each model gets its own verdict" in text
    # the pilot: this job's own study, its noise pooled over cells
    grid_study(job, peak_at_5000, balances=(0.5, 1.0), seeds=(0, 1, 2), noise=0.005)
    text = plan_text(job, effect=0.01)
    assert (
        f"study `{job.study}`: seed SD" in text
        and "pooled over the replicates of its mixtures (12 df)" in text
    )
    with pytest.raises(UserError, match=r"--noise -1\.0: the seed SD must be positive"):
        plan_text(job, noise=-1.0)
    # a pilot of another metric has its noise on another scale
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**to_dict(job), "objective": {
        **to_dict(job)["objective"], "metric": "accuracy/arts"}}))  # fmt: skip
    with pytest.raises(UserError, match="measures `accuracy/arts`, this job `score`"):
        plan_text(job, effect=0.01, pilot=str(other))
    with pytest.raises(UserError, match="sizes grid designs"):
        plan_text(make_job(design={"kind": "corners", "volumes": [1000]}), noise=0.1)


def test_plan_without_seed_noise_says_what_to_give(make_job: Any) -> None:
    job = make_job()
    grid_study(job, peak_at_5000, seeds=(0,))
    with pytest.raises(UserError, match=r"seed noise is unknown; give --noise SD"):
        plan_text(job)


def test_plan_command_and_the_reports_detectable_effect(
    make_job: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = make_job()
    grid_study(job, peak_at_5000, seeds=(0, 1, 2))
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(to_dict(job)))
    assert main(["plan", str(path), "--effect", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "Seed noise: study" in out and "seeds per mixture" in out
    findings = analyse(load(job))
    assert "detects a volume effect of" in findings.statements()[1]
