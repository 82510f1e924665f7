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


def _sleep(conn: object) -> None:
    import time

    time.sleep(30)


def test_a_stopped_report_child_ends_by_sigterm_without_a_traceback() -> None:
    """q#12: `report --metric scor` printed "Process ForkProcess-1: Traceback ...
    ablate.errors.Terminated" from a child `Child.stop` terminated: the child had the parent's
    SIGTERM handler, so the signal raised inside it instead of ending it."""
    import signal

    from ablate.analysis.forked import Child, can_fork
    from ablate.errors import stop_on_sigterm

    if not can_fork():
        return
    previous = stop_on_sigterm()
    try:
        child = Child(_sleep)
        child.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert child.proc.exitcode == -signal.SIGTERM


def test_a_metric_typo_gets_a_did_you_mean() -> None:
    """q#12: `report --metric scor` listed the metrics but did not point at `score`."""
    import pandas as pd

    from ablate.analysis.load import completed
    from ablate.errors import UserError

    df = pd.DataFrame({"state": ["COMPLETE"], "value": [0.5], "score": [0.5], "noise_free": [0.4]})
    df.attrs["study"] = "simq"
    try:
        completed(df, "scor")
    except UserError as err:
        assert "metric `scor` is not recorded by any completed trial of study `simq` (did " in (
            str(err)
        )
        assert "(did you mean `score`?); choose one of:" in str(err)
    else:
        raise AssertionError("no error")
