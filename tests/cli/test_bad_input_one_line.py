"""Review q: a user's mistake is one line (exit 2), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ablate.cli import main
from ablate.config import read_job
from ablate.errors import UserError
from ablate.tracking.client import mlflow_client


def one_line_error(argv: list[str], capsys: Any) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_an_out_folder_that_cannot_be_made_is_one_line(tmp_path: Path, capsys: Any) -> None:
    """q#2: `--out` a file, or under one (the OSError a read-only mount gives takes the same
    path), ended in a traceback for `data import`, `data synth` and `demo`."""
    a_file = tmp_path / "img.png"
    a_file.write_bytes(b"not a folder")
    src = tmp_path / "src.jsonl"
    src.write_text(json.dumps({"id": "a", "conversations": [
        {"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]}) + "\n")  # fmt: skip
    err = one_line_error(["data", "import", str(src), "--out", str(a_file / "pool")], capsys)
    assert f"--out {a_file / 'pool'}: cannot create the pool folder" in err
    err = one_line_error(["data", "synth", "--out", str(a_file), "--no-model"], capsys)
    assert f"--out {a_file}: is a file, not a folder" in err
    err = one_line_error(["data", "synth", "--out", str(a_file / "w"), "--no-model"], capsys)
    assert "cannot create the world folder" in err
    err = one_line_error(["demo", "--out", str(a_file)], capsys)
    assert f"--out {a_file}: is a file, not a folder" in err


def test_a_tracking_file_that_is_no_mlflow_database_is_one_line(tmp_path: Path) -> None:
    """q#2: a damaged `mlflow.db`, or one that cannot be made, was an ~90-line traceback."""
    (tmp_path / "mlflow.db").write_text("hello")
    with pytest.raises(UserError, match=r"cannot open it as an MLflow database \(Database"):
        mlflow_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match="cannot create the MLflow database there"):
        mlflow_client(f"sqlite:///{tmp_path / 'f' / 'mlflow.db'}")


def test_storage_and_tracking_naming_one_file_are_refused_when_the_job_is_read(
    tmp_path: Path,
) -> None:
    """q#2: `storage:` and `tracking:` both `sqlite:///same.db` failed in MLflow's migrations."""
    path = tmp_path / "job.yaml"
    job = {
        "study": "s",
        "storage": "sqlite:///same.db",
        "tracking": f"sqlite:///{tmp_path / 'same.db'}",
        "task_types": ["a", "b"],
        "objective": {"kind": "sim", "metric": "score"},
    }
    path.write_text(yaml.safe_dump(job))
    with pytest.raises(UserError, match="`storage` and `tracking` name the same file"):
        read_job(path)
    assert read_job(path, ["tracking=sqlite:///mlflow.db"]).tracking == "sqlite:///mlflow.db"


def test_synth_refuses_a_folder_of_the_users_own_files(tmp_path: Path, capsys: Any) -> None:
    """q#7: `data synth --out mydata` overwrote the user's `train.jsonl` and `bench.yaml`."""
    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "train.jsonl").write_text('{"id": "mine"}\n')
    (mine / "bench.yaml").write_text("name: my-real-bench\n")
    err = one_line_error(["data", "synth", "--out", str(mine), "--no-model"], capsys)
    assert f"--out {mine}: holds train.jsonl, bench.yaml (not a world made by ablate" in err
    assert (mine / "train.jsonl").read_text() == '{"id": "mine"}\n'
    # a world ablate wrote is rewritten for another spec (and reused for the same one)
    world = tmp_path / "world"
    argv = ["data", "synth", "--out", str(world), "--no-model", "--n-train", "20"]
    assert main(argv) == 0 and main([*argv[:-1], "30"]) == 0
    assert len((world / "train.jsonl").read_text().splitlines()) == 30


def test_an_import_error_after_the_progress_line_starts_a_line_of_its_own(
    tmp_path: Path, capsys: Any
) -> None:
    """q#14: an interrupted (or failed) import printed its line right after the `\\r` progress
    line, mid-line."""
    turns = [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]
    rows = [json.dumps({"id": f"r{i}", "conversations": turns}) for i in range(1200)]
    src = tmp_path / "src.jsonl"
    src.write_text("\n".join([*rows, "{not json"]) + "\n")
    assert main(["data", "import", str(src), "--out", str(tmp_path / "pool")]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("ablate: error: ")


def test_a_folder_given_as_the_job_says_it_is_a_folder(tmp_path: Path, capsys: Any) -> None:
    """q#14: `ablate status jb` (a folder) said "jb: no such file"."""
    (tmp_path / "a.yaml").write_text("study: a\n")
    err = one_line_error(["status", str(tmp_path)], capsys)
    assert err == (
        f"ablate: error: {tmp_path}: is a folder, not a YAML file; give a file (YAML files "
        "there: a.yaml)"
    )


def test_a_job_without_objective_is_told_it_is_a_train_job(tmp_path: Path, capsys: Any) -> None:
    """q#14: "`bench` is required when objective.kind is train" of a job with no `objective:`."""
    path = tmp_path / "job.yaml"
    path.write_text("study: s\npool: p\ntask_types: [a, b]\n")
    err = one_line_error(["status", str(path)], capsys)
    assert "`bench` is required when objective.kind is train (the kind when `objective:` is " in err


def test_an_interrupted_report_is_not_said_to_resume(monkeypatch: Any, capsys: Any) -> None:
    """q#14: Ctrl-C in `ablate report` said "rerun the same command to resume"."""
    import sys

    def ctrl_c(args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["ablate.cli.main"], "run", ctrl_c)
    assert main(["report", "job.yaml", "--out", "r"]) == 130
    assert "interrupted; rerun the same command to start again" in capsys.readouterr().err


def test_a_damaged_tracking_file_stops_the_sweep_before_its_study_or_ray(
    make_job: Any, tmp_path: Path
) -> None:
    """q#2: a `tracking:` file that is no MLflow database failed after Ray had started (an
    ~90-line traceback); now before the study is even opened."""
    from ablate.sweep.driver import run_sweep

    (tmp_path / "text.db").write_text("hello")
    job = make_job(tracking=f"sqlite:///{tmp_path / 'text.db'}")
    with pytest.raises(UserError, match="cannot open it as an MLflow database"):
        run_sweep(job, ["caption", "count", "compare"], progress=None)
    assert not (tmp_path / "optuna.db").exists()  # nothing was opened before the refusal
