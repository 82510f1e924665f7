"""Review H, F1: a project folder moved or copied elsewhere resumes with its MLflow artifacts
beside its tracking database now. Before: MLflow kept the experiment's absolute artifact
location, so the resumed runs wrote into (and recreated) the old folder, and where it could not
be made the sweep died with a NotADirectoryError traceback. A real SQLite store each time."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking._tracking_service import utils as mlflow_utils

from ablate import tracking
from ablate.errors import UserError
from ablate.mixture import Mixture
from ablate.result import TrialResult
from ablate.tracking.client import mlflow_client

MIX = Mixture(name="v200-b0.50-s1", volume=200, proportions={"caption": 0.8, "count": 0.2}, seed=1)
RESULT = TrialResult(metrics={"score": 0.5}, counts={"caption": 160}, row_ids=("r1",))


def _job(make_job: Any, root: Path) -> Any:
    return make_job(tracking=f"sqlite:///{root}/mlflow.db", storage=f"sqlite:///{root}/optuna.db")


def _first_run(make_job: Any, root: Path) -> tuple[str, str]:
    """A sweep's parent run with a child (client path) and one from the batched writer, ended."""
    job = _job(make_job, root)
    parent = tracking.start_sweep(job)
    child = tracking.log_trial(job, parent, 0, MIX, RESULT, "COMPLETE")
    with tracking.RunWriter(job, parent) as writer:
        writer.submit(1, MIX, RESULT, "COMPLETE", seconds=1.0)
    tracking.finish_sweep(job, parent, {"n_complete": 2})
    mlflow_utils._artifact_repos_cache.clear()  # per run id, in this process: a new command's
    return parent, child


def _uris(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT artifact_location FROM experiments WHERE name = 'test-study'")
        runs = con.execute("SELECT artifact_uri FROM runs")
        return [r[0] for r in rows] + [r[0] for r in runs]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _resume(make_job: Any, root: Path, parent: str) -> Any:
    job = _job(make_job, root)
    assert tracking.start_sweep(job) == parent  # the same parent run, found again
    tracking.log_trial(job, parent, 2, MIX, RESULT, "COMPLETE")
    with tracking.RunWriter(job, parent) as writer:
        writer.submit(3, MIX, RESULT, "COMPLETE", seconds=1.0)
    report = root / "report.html"
    report.write_text("<p>report</p>")
    found = tracking.find_sweep_run_sqlite(job)  # what `ablate report` copies its files to
    assert found is not None and found[0] == parent and found[1] is not None
    tracking.copy_run_artifacts(found[1], [report], "report")
    return job


@pytest.mark.parametrize("old_path", ["gone", "a file"])
def test_a_moved_project_resumes_with_artifacts_beside_its_database(
    make_job: Any, tmp_path: Path, old_path: str
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    parent, child = _first_run(make_job, old)
    shutil.move(old, new)
    if old_path == "a file":  # the old path unusable (NotADirectoryError before)
        old.mkdir()
        (old / "mlartifacts").write_text("not a folder")
    job = _resume(make_job, new, parent)
    here = (new / "mlartifacts" / "test-study").resolve().as_uri()
    uris = _uris(new / "mlflow.db")
    assert len(uris) == 6 and all(u == here or u.startswith(here + "/") for u in uris), uris
    if old_path == "gone":
        assert not old.exists()  # before: recreated, with the resumed runs' artifacts
    else:
        assert [p.name for p in old.iterdir()] == ["mlartifacts"]
    arts = new / "mlartifacts" / "test-study"
    assert len([f for f in _files(arts) if f.endswith("selection.json")]) == 4
    # the first run's job.yaml, moved along, and the resumed run's jobs/<UTC start>.yaml
    assert "artifacts/job.yaml" in _files(arts / parent)
    assert [f for f in _files(arts / parent) if "/jobs/" in f]
    assert (arts / parent / "artifacts" / "report" / "report.html").is_file()
    client = mlflow_client(job.tracking_uri)  # the first run's artifacts, read where they are
    local = client.download_artifacts(child, "selection.json", str(tmp_path / "dl"))
    assert Path(local).read_text().startswith("{")


def test_a_copied_project_writes_into_its_own_folder(make_job: Any, tmp_path: Path) -> None:
    old, copy = tmp_path / "old", tmp_path / "copy"
    parent, _ = _first_run(make_job, old)
    shutil.copytree(old, copy)
    before = _files(old)
    _resume(make_job, copy, parent)
    assert _files(old) == before  # the original project is not written by its copy
    here = (copy / "mlartifacts" / "test-study").resolve().as_uri()
    assert all(u.startswith(here) for u in _uris(copy / "mlflow.db"))
    assert len([f for f in _files(copy) if f.endswith("selection.json")]) == 4


def test_the_same_folder_under_another_path_is_left_alone(make_job: Any, tmp_path: Path) -> None:
    """A store reached by another path to the same folder (a mount; here a symlink) keeps its
    location: the same files either way, and nothing flips between two hosts' paths."""
    real = tmp_path / "real"
    _first_run(make_job, real)
    (tmp_path / "link").symlink_to(real)
    link_uri = (tmp_path / "link" / "mlartifacts" / "test-study").as_uri()
    with sqlite3.connect(real / "mlflow.db") as con:
        con.execute("UPDATE experiments SET artifact_location = ?", (link_uri,))
    tracking.find_sweep_run_sqlite(_job(make_job, real))
    assert _uris(real / "mlflow.db")[0] == link_uri


def test_an_unusable_artifact_folder_is_one_line(make_job: Any, tmp_path: Path) -> None:
    """An experiment whose artifacts go elsewhere than ablate's folder (made by hand, or by
    MLflow's default) is the user's: not moved, and refused when it cannot be written."""
    (tmp_path / "afile").write_text("not a folder")
    job = make_job()
    stale = tmp_path / "afile" / "arts"
    mlflow_client(job.tracking_uri).create_experiment("test-study", stale.as_uri())
    with pytest.raises(UserError) as err:
        tracking.start_sweep(job)
    text = str(err.value)
    assert str(stale) in text and job.tracking_shown in text, text
    assert f"{tmp_path / 'afile'} is not a folder" in text and "\n" not in text
    assert "make that a writable folder, or set `tracking` to another store" in text


def test_an_unusable_folder_beside_the_database(make_job: Any, tmp_path: Path) -> None:
    (tmp_path / "mlartifacts").write_text("not a folder")
    with pytest.raises(UserError, match=r"keeps its artifacts in .*mlartifacts/test-study"):
        tracking.start_sweep(make_job())
