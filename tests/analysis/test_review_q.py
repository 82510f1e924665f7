"""Review q, finding 1 and 13: the commands report.html suggests (and its MLflow artifact holds)
copied each `--set` value as given, a storage password included, and left the job's path
unquoted, so a path with spaces pasted as three arguments."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from ablate.analysis.page import _proposals
from ablate.analysis.surrogates import Proposal
from ablate.config import read_job


def test_suggested_commands_mask_passwords_and_paste_as_one_argument(tmp_path: Path) -> None:
    folder = tmp_path / "sp ace" / "ünï cødé"
    folder.mkdir(parents=True)
    path = folder / "jöb.yaml"
    job_text = {
        "study": "base",
        "storage": f"sqlite:///{tmp_path}/optuna.db",
        "task_types": ["a", "b"],
        "objective": {"kind": "sim", "metric": "score"},
        "design": {"kind": "grid", "volumes": [100], "balance": [1.0], "seeds": [0]},
    }
    path.write_text(yaml.safe_dump(job_text))
    url = "postgresql://postgres:PGSECRET9@127.0.0.1:5432/test"
    job = read_job(path, ["study=q", f"storage={url}", "tracking=http://bob:QSECRET3@h:5000"])
    proposal = Proposal({"a": 0.5, "b": 0.5}, 100.0, 0.5, 0.4, 0.6, "gp")
    page = "".join(_proposals(job, "score", [proposal], ""))
    assert "SECRET" not in page and "SECRET" not in job.command("sweep")
    assert "put it back" in page
    words = shlex.split(job.command("propose"))
    assert words[:3] == ["ablate", "propose", str(path)]
    assert "storage=postgresql://postgres:***@127.0.0.1:5432/test" in words
    assert "put it back" not in "".join(_proposals(read_job(path), "score", [proposal], ""))
