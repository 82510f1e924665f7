"""A PostgreSQL storage URL with a password: no command prints it and no record keeps it
(MLflow's database and artifacts, the study's attributes, the report folder)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusters_for_tests import POSTGRES, postgres_ready

from ablate.cli import main
from ablate.config import to_dict

SECRET = "S3cretPW"


def _with_password(url: str) -> str:
    """`POSTGRES` with a password (trust auth: the server does not check it)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':')[0]}:{SECRET}@{host}"


def _leaks(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


@pytest.mark.cluster
def test_no_command_shows_or_records_the_storage_password(
    ray_session: Any, make_job: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not postgres_ready():
        pytest.skip(f"no PostgreSQL at {POSTGRES}")
    import optuna

    from ablate.study import postgres_driver

    study = f"nopw-{uuid.uuid4().hex[:8]}"
    data = to_dict(make_job(study=study))
    data.update(storage=_with_password(POSTGRES), tracking=f"sqlite:///{tmp_path}/mlflow.db")
    data["design"].update(volumes=[100, 400], balance=[0.4, 0.7, 1.0], seeds=[0, 1])
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(data))
    report = tmp_path / "report"
    commands = [
        ["sweep", job],
        ["status", job],
        ["report", job, "--out", report],
        ["propose", job, "-n", "1"],
        ["plan", job],
        ["trial", job, "--json"],
        ["sweep", job],  # a resume: runs the proposals, logs this run's job again
    ]
    try:
        for argv in commands:
            code = main([str(a) for a in argv])
            out, err = capsys.readouterr()
            assert code == 0, (argv, out, err)
            assert SECRET not in out + err and "Traceback" not in out + err, argv
        assert (report / "report.html").exists()
        stored = optuna.load_study(study_name=study, storage=postgres_driver(POSTGRES))
        system = stored._storage.get_study_system_attrs(stored._study_id)
        attrs: list[Any] = [stored.user_attrs, system]
        attrs += [[t.user_attrs, t.system_attrs, t.params] for t in stored.trials]
        assert len(stored.trials) == 14  # 12 design points + 2 seeds of the proposal
        assert SECRET not in json.dumps(attrs, default=str)
        job.unlink()  # the job file itself is the user's
        assert _leaks(tmp_path) == []  # mlflow.db, mlartifacts/, report/
    finally:
        optuna.delete_study(study_name=study, storage=postgres_driver(POSTGRES))


@pytest.mark.parametrize("password", ["Zx/9kLeak", "Zx?9k#Leak", "Zx 9k'Leak\""])
def test_status_of_a_missing_study_stars_a_password_with_url_characters(
    password: str, make_job: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # SQLAlchemy takes all of `Zx/9kLeak` as the password (trust auth lets it connect).
    if not postgres_ready():
        pytest.skip(f"no PostgreSQL at {POSTGRES}")
    scheme, rest = POSTGRES.split("://", 1)
    user, host = rest.split("@", 1)
    data = to_dict(make_job(study=f"nopw-missing-{uuid.uuid4().hex[:8]}"))
    data.update(storage=f"{scheme}://{user}:{password}@{host}")
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(data))
    assert main(["status", str(job)]) != 0
    out, err = capsys.readouterr()
    assert "Leak" not in out + err and "9k" not in out + err
    assert f"{scheme}://{user}:***@{host}" in out + err
