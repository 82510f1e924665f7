"""Surrogates, `ablate report` and `ablate propose`, end to end on small studies."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from test_analysis import TYPES, grid_study, peak_at_5000

from ablate.analysis import load
from ablate.analysis.report import propose_and_enqueue, write_report
from ablate.analysis.surrogates import fit_surrogates
from ablate.config import to_dict
from ablate.errors import UserError


def dirichlet_study(job: Any, n: int = 60, noise: float = 0.01, seed: int = 0) -> None:
    """n trials at Dirichlet(1) proportions and log-uniform volumes 500..50,000, one seed each."""
    import optuna

    from ablate.analysis.load import result_trial

    rng = np.random.default_rng(seed)
    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction="maximize")
    for i in range(n):
        props = dict(zip(TYPES, rng.dirichlet(np.ones(3)).tolist(), strict=True))
        volume = round(math.exp(rng.uniform(math.log(500), math.log(50_000))))
        value = peak_at_5000(props, volume, 0) + rng.normal(0, noise)
        study.add_trial(result_trial(props, volume, 0, f"d{i}", value, {"score": value}, 1.0))


def test_surrogates_rank_held_out_mixtures_and_propose_the_optimum(make_job: Any) -> None:
    job = make_job()
    dirichlet_study(job, n=60)
    sur = fit_surrogates(load(job))
    assert set(sur.cv) == {"loglinear", "mixing_law", "gp", "ensemble"}
    assert all(cv.folds == 5 for cv in sur.cv.values())
    best = sur.cv[sur.best]
    assert best.spearman >= 0.8, sur.cv
    # proposals use the lowest held-out regret of the top pick (issue 14)
    assert best.regret == min(cv.regret for cv in sur.cv.values())
    (prop,) = sur.propose(volume=5000, n=1)
    # the landscape's optimum is the uniform mixture (by symmetry): score 0.9502
    truth = peak_at_5000(prop.proportions, 5000, 0)
    assert truth > 0.95 * peak_at_5000(dict.fromkeys(TYPES, 1 / 3), 5000, 0)
    assert prop.low <= prop.predicted <= prop.high
    assert abs(prop.predicted - truth) < 0.1
    assert sum(prop.proportions.values()) == pytest.approx(1.0)


def test_too_few_mixtures_for_surrogates(make_job: Any, tmp_path: Path) -> None:
    job = make_job()
    grid_study(job, peak_at_5000, volumes=(1000,), balances=(0.5, 1.0), seeds=(0, 1))
    with pytest.raises(UserError, match="at least 4 distinct mixtures; the study has 2"):
        fit_surrogates(load(job))
    # the report still comes out, saying why there are no surrogates
    report = write_report(job, tmp_path / "r", log_to_mlflow=False)
    assert report.surrogates is None and "at least 4 distinct mixtures" in report.notes[0]
    assert report.findings.verdict == "cannot be decided"
    assert "only one volume was tested" in report.html.read_text()


@pytest.mark.slow
def test_report_files_verdict_and_mlflow(make_job: Any, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from ablate import tracking

    job = make_job()
    grid_study(job, peak_at_5000)
    parent = tracking.start_sweep(job)
    tracking.finish_sweep(job, parent, {"n_complete": 24})
    report = write_report(job, tmp_path / "report", n_propose=2)
    page = report.html.read_text()
    # the verdict opens the page, before any plot
    assert page.index("Less is more&rdquo; holds") < page.index("<img")
    assert page.count("data:image/png;base64,") == len(report.plots) == 7
    assert list(report.plots) == [  # the page's order: the effects beside the simplex plot
        "volume_balance",
        "heatmap",
        "domains",
        "pareto",
        "simplex",
        "effects",
        "history",
    ]
    csv = (tmp_path / "report" / "trials.csv").read_text().splitlines()
    assert len(csv) == 25 and "p/caption" in csv[0] and "gpu_seconds" in csv[0]
    assert len(report.proposals) == 2
    assert report.mlflow_run_id == parent
    client = MlflowClient(job.tracking_uri)
    logged = {Path(a.path).name for a in client.list_artifacts(parent, "report")}
    assert {"report.html", "trials.csv", "volume_balance.png", "pareto.png"} <= logged
    assert client.get_run(parent).info.status == "FINISHED"  # the lookup changed nothing


@pytest.mark.slow
def test_propose_enqueues_trials_the_next_sweep_runs(
    make_job: Any, ray_session: Any, tmp_path: Path
) -> None:
    from optuna.trial import TrialState

    from ablate.study import open_study
    from ablate.sweep import run_sweep

    job = make_job(
        design={"volumes": [100, 1000], "balance": [0.3, 0.7, 1.0], "seeds": [0, 1]},
        objective={"target": "objectives_for_tests:landscape"},
    )
    run_sweep(job, list(job.task_types), progress=None)
    done = propose_and_enqueue(job, n=2, volume=1000)
    assert done.trials == 4  # 2 mixtures x the design's 2 seeds
    waiting = open_study(job, create=False).get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 4 and all(t.user_attrs["volume"] == 1000 for t in waiting)
    assert {t.user_attrs["seed"] for t in waiting} == {0, 1}
    # enqueuing the same proposals again adds nothing
    assert propose_and_enqueue(job, n=2, volume=1000).trials == 0
    summary = run_sweep(job, list(job.task_types), progress=None)
    assert summary.n_run == 4 and summary.n_complete == 16
    df = load(job)
    proposed = df[df["mixture"].str.startswith("prop")]
    assert len(proposed) == 4 and set(proposed["state"]) == {"COMPLETE"}
    # the landscape peaks at caption 0.5, count 0.3, compare 0.2: the proposals beat the grid
    grid = df[~df["mixture"].str.startswith("prop") & (df["volume"] == 1000)]
    assert proposed["value"].max() > grid["value"].max()


def _job_file(job: Any, tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(to_dict(job)))
    return path


@pytest.mark.slow
def test_cli_report_and_propose(make_job: Any, tmp_path: Path, capsys: Any) -> None:
    from ablate.cli import main

    job = make_job()
    grid_study(job, peak_at_5000)
    path = _job_file(job, tmp_path)
    assert main(["report", str(path), "--out", str(tmp_path / "out"), "--no-mlflow"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('"Less is more" HOLDS over all balance levels')
    assert "held-out Spearman" in out and (tmp_path / "out" / "report.html").is_file()
    (tmp_path / "afile").write_text("mine")
    for bad in ("afile", "afile/report"):  # a file, and a folder under a file: one line each
        assert main(["report", str(path), "--out", str(tmp_path / bad), "--no-mlflow"]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"ablate: error: --out {tmp_path / bad}: cannot make the report")
    assert (tmp_path / "afile").read_text() == "mine"
    # a loss named by --metric is lower-is-better (its verdict agrees with the score's), and
    # the note says how to turn it
    assert main(["report", str(path), "--out", str(tmp_path / "loss"), "--no-mlflow",
                 "--metric", "bench_loss"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith('"Less is more" HOLDS over all balance levels: 5,000 rows'), out[:300]
    assert "`bench_loss` is analysed with lower values better (--direction maximize" in out
    assert main(["report", str(path), "--out", str(tmp_path / "loss2"), "--no-mlflow",
                 "--metric", "bench_loss", "--direction", "maximize"]) == 0  # fmt: skip
    out = capsys.readouterr().out  # the highest loss, at 1,000 rows, taken for the best
    assert out.startswith('"Less is more" HOLDS over all balance levels: 1,000 rows'), out[:300]
    assert "is analysed with" not in out
    assert main(["propose", str(path), "-n", "2", "--volume", "5000", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("at 5,000 rows: predicted score") == 2 and "nothing enqueued" in out
    assert main(["propose", str(path), "-n", "1", "--seeds", "7"]) == 0
    assert "enqueued 1 trial(s)" in capsys.readouterr().out


def test_cli_bad_input_is_one_line(make_job: Any, tmp_path: Path, capsys: Any) -> None:
    import optuna

    from ablate.cli import main

    job = make_job()
    optuna.create_study(study_name=job.study, storage=job.storage_url)
    path = _job_file(job, tmp_path)
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    # (optuna's own "A new study created" log line may come first, by the test's create_study)
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("ablate: error: study `test-study` has no trials yet")
    )
    assert "Traceback" not in err
    assert main(["report", str(path), "--out", str(tmp_path / "o"), "--metric", "x"]) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()  # no empty folders
    assert main(["propose", str(path), "-n", "0"]) == 2
    assert "-n must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_forked_and_serial_reports_agree(make_job: Any, tmp_path: Path) -> None:
    job = make_job()
    grid_study(job, peak_at_5000)
    forked = write_report(job, tmp_path / "a", log_to_mlflow=False, parallel=True)
    serial = write_report(job, tmp_path / "b", log_to_mlflow=False, parallel=False)
    assert list(forked.plots) == list(serial.plots)
    assert forked.findings.statements() == serial.findings.statements()
    assert forked.surrogates is not None and serial.surrogates is not None
    assert forked.surrogates.cv.keys() == serial.surrogates.cv.keys()
    for name, cv in forked.surrogates.cv.items():
        assert cv.spearman == serial.surrogates.cv[name].spearman
    assert [p.describe("score") for p in forked.proposals] == [
        p.describe("score") for p in serial.proposals
    ]
    # the forked fit hands back no models (no scikit-learn import here); one refits on demand
    assert forked.surrogates.predict([[1 / 3] * 3], 5000).shape == (1,)


def test_effect_curves_follow_the_landscape_around_the_recommended_mixture(
    make_job: Any, tmp_path: Path
) -> None:
    """On 60 Dirichlet mixtures of a landscape whose quality peaks at equal shares, each type's
    curve (its share moved, the others keeping their ratios) peaks near where the true
    landscape does on the same path and follows its shape; the plot is drawn."""
    from scipy.stats import spearmanr

    from ablate.analysis.plot_effects import GRID, effect_curves, effect_paths, plot_effects
    from ablate.analysis.recommend import recommend

    paths = effect_paths(np.array([0.5, 0.3, 0.2]))
    assert paths.shape == (3, GRID, 3)
    np.testing.assert_allclose(paths.sum(-1), 1.0)
    np.testing.assert_allclose(paths[0][:-1, 1] / paths[0][:-1, 2], 1.5)  # ratios kept
    job = make_job()
    dirichlet_study(job)
    sur = fit_surrogates(load(job))
    rec = recommend(sur, n=1)
    curves = effect_curves(sur, rec)
    start = np.array([curves.anchor.proportions[t] for t in TYPES])
    for t, path in enumerate(effect_paths(start)):
        truth = np.array([peak_at_5000(dict(zip(TYPES, p, strict=True)), curves.anchor.volume, 0)
                          for p in path])  # fmt: skip
        assert abs(curves.share[curves.mid[t].argmax()] - curves.share[truth.argmax()]) <= 0.1
        # the shape (a surrogate's level may be off: the bootstrap band shows its variance, not bias)
        assert spearmanr(curves.mid[t], truth).statistic >= 0.9
    assert (curves.low <= curves.mid + 1e-9).all() and (curves.mid <= curves.high + 1e-9).all()
    drawn = plot_effects(sur, rec, tmp_path / "effects.png", "score")
    assert drawn is not None and drawn.stat().st_size > 10_000


def test_propose_refuses_a_study_whose_trials_all_scored_the_same(make_job: Any) -> None:
    """Every trial at 0 (a bench that scored nothing): nothing to rank, nothing enqueued
    (before: a held-out Spearman of nan, then trials enqueued anyway)."""
    import optuna

    job = make_job()
    grid_study(job, lambda props, volume, seed: 0.0, noise=0.0)
    before = len(optuna.load_study(study_name=job.study, storage=job.storage_url).trials)
    with pytest.raises(UserError, match="scored 0 on score: a surrogate has nothing to rank"):
        propose_and_enqueue(job, n=2)
    after = optuna.load_study(study_name=job.study, storage=job.storage_url).trials
    assert len(after) == before


def test_propose_refuses_a_job_a_sweep_would_refuse(make_job: Any) -> None:
    """The proposals train with this job's settings: a job whose settings differ from the
    study's (as `ablate sweep` refuses it) enqueues nothing (before: it enqueued anyway)."""
    import optuna

    from ablate.plan import job_task_types
    from ablate.study import check_settings, job_settings, open_study

    job = make_job()
    grid_study(job, peak_at_5000)
    study = open_study(job)
    check_settings(study, job, job_settings(job, job_task_types(job)))  # as the sweep records
    before = len(optuna.load_study(study_name=job.study, storage=job.storage_url).trials)
    other = make_job(
        objective={**to_dict(job)["objective"], "target": "objectives_for_tests:fails_for_seed_1"}
    )
    with pytest.raises(UserError, match=r"objective\.target: study has"):
        propose_and_enqueue(other, n=2)
    after = optuna.load_study(study_name=job.study, storage=job.storage_url).trials
    assert len(after) == before
    done = propose_and_enqueue(job, n=2)  # the job's own settings: enqueued, with its level
    assert done.trials > 0


def test_a_job_metric_its_trials_never_recorded_is_refused(make_job: Any) -> None:
    """`--set objective.metric=accuracy/nope` on a study of `score`: refused (before: propose
    analysed Optuna's value, another metric's, under that name)."""
    job = make_job()
    grid_study(job, peak_at_5000)
    other = make_job(objective={**to_dict(job)["objective"], "metric": "scor"})
    with pytest.raises(UserError, match=r"recorded no `scor` .*\(did you mean `score`\?\)"):
        propose_and_enqueue(other, n=1, dry_run=True)
    with pytest.raises(UserError, match=r"recorded no `scor`"):
        load(other)


@pytest.mark.parametrize("parallel", [True, False])
def test_a_tracking_server_that_fails_leaves_the_report_written(
    make_job: Any, tmp_path: Path, parallel: bool
) -> None:
    """Before: the MLflow child died, its pipe broke, the report folder was deleted and the CLI
    took the broken pipe for `| head` (exit 0, nothing printed, nothing written)."""
    import socket

    with socket.socket() as s:  # a port nothing listens on: refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = make_job(tracking=f"http://u:S3cretPW@127.0.0.1:{port}")
    dirichlet_study(job, n=30)
    report = write_report(job, tmp_path / "r", n_propose=1, parallel=parallel)
    assert (tmp_path / "r" / "report.html").exists() and (tmp_path / "r" / "trials.csv").exists()
    (note,) = [n for n in report.notes if "not logged to MLflow" in n]
    assert f"not logged to MLflow at http://u:***@127.0.0.1:{port}" in note
    assert "S3cretPW" not in "\n".join(report.notes) and report.mlflow_run_id is None
