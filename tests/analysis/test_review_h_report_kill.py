"""Review H, F7: a killed `ablate report` left new and old files mixed in its folder, with
nothing saying so. The report is now built in a sibling folder and swapped in whole at the
end; a folder that holds other files too is written in place, marked incomplete until done."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from processes_for_tests import kill_when, start_cli
from test_analysis import grid_study, peak_at_5000

from ablate.analysis import report as report_module
from ablate.analysis.report import INCOMPLETE, write_report
from ablate.config import to_dict

ROOT = Path(__file__).resolve().parents[2]


def _contents(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.report-*"))


def _reported(make_job: Any, out: Path) -> tuple[Any, Path]:
    """A grid study of the job `make_job` gives, and its report written into `out`."""
    job = make_job()
    grid_study(job, peak_at_5000)
    write_report(job, out, log_to_mlflow=False, parallel=False)
    return job, out


def stop(*args: Any) -> str:
    """A render interrupted (Ctrl-C) before the page is written."""
    raise KeyboardInterrupt


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_killed_report_leaves_the_old_one_whole(make_job: Any, tmp_path: Path) -> None:
    job, out = _reported(make_job, tmp_path / "rep")
    old = _contents(out)
    assert "report.html" in old and "trials.csv" in old
    (out / "stale.png").write_bytes(b"an earlier report's plot")  # a report file: swapped too
    old = _contents(out)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(to_dict(job)))
    proc = start_cli(["report", str(path), "--out", str(out), "--no-mlflow"])
    work = tmp_path / f".rep.report-{proc.pid}"
    kill_when(proc, (work / "trials.csv").exists, "the report writing")  # written first
    assert _contents(out) == old  # before: new plots and trials.csv beside the old page
    assert _leftovers(out) == [work.name]
    report = write_report(job, out, log_to_mlflow=False, parallel=False)  # the rerun
    assert _leftovers(out) == []  # the killed run's folder removed
    assert report.html == out / "report.html" and report.csv == out / "trials.csv"
    assert all(p.parent in (out, *out.glob("group-*")) for p in report.plots.values())
    assert all(p.is_file() for p in report.plots.values())
    assert "stale.png" not in _contents(out)  # the new report only, whole


def test_a_failed_report_leaves_the_old_one_or_nothing(
    make_job: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job, out = _reported(make_job, tmp_path / "rep")
    old = _contents(out)

    monkeypatch.setattr(report_module, "render_page", stop)
    with pytest.raises(KeyboardInterrupt):
        write_report(job, out, log_to_mlflow=False, parallel=False)
    assert _contents(out) == old and _leftovers(out) == []
    with pytest.raises(KeyboardInterrupt):
        write_report(job, tmp_path / "new", log_to_mlflow=False, parallel=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "optuna.db", "rep"]


def test_a_folder_with_other_files_is_written_in_place_and_marked(
    make_job: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report's folder that holds the user's own files is never swapped away: written in
    place, its old page removed and `REPORT_INCOMPLETE.txt` there until the new page is."""
    job = make_job()
    grid_study(job, peak_at_5000)
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    write_report(job, out, log_to_mlflow=False, parallel=False)
    assert (out / "report.html").is_file() and not (out / INCOMPLETE).exists()
    assert (out / "notes.txt").read_text() == "mine" and _leftovers(out) == []

    monkeypatch.setattr(report_module, "render_page", stop)
    with pytest.raises(KeyboardInterrupt):
        write_report(job, out, log_to_mlflow=False, parallel=False)
    assert (out / INCOMPLETE).is_file() and not (out / "report.html").exists()
    assert (out / "notes.txt").read_text() == "mine"
    monkeypatch.undo()
    write_report(job, out, log_to_mlflow=False, parallel=False)
    assert (out / "report.html").is_file() and not (out / INCOMPLETE).exists()


def test_the_working_folder_is_never_renamed(
    make_job: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job, out = _reported(make_job, tmp_path / "rep")
    monkeypatch.chdir(out)
    inode = out.stat().st_ino
    report = write_report(job, ".", log_to_mlflow=False, parallel=False)
    assert out.stat().st_ino == inode and Path(report.html).resolve() == out / "report.html"
    assert not (out / INCOMPLETE).exists() and _leftovers(out) == []


def test_a_run_killed_between_its_two_renames(make_job: Any, tmp_path: Path) -> None:
    """The one moment `out` is missing: the next run puts the old report back first."""
    job, out = _reported(make_job, tmp_path / "rep")
    old = _contents(out)
    pid = _dead_pid()
    out.rename(tmp_path / f".rep.report-{pid}.old")  # the killed run's first rename
    (tmp_path / f".rep.report-{pid}").mkdir()  # its new report, not yet renamed
    assert report_module._begin(out).name == f".rep.report-{os.getpid()}"
    assert _contents(out) == old and _leftovers(out) == [f".rep.report-{os.getpid()}"]
    (tmp_path / f".rep.report-{os.getpid()}").rmdir()
    (tmp_path / f".rep.report-{os.getpid() + 1}x").mkdir()  # not a name a report makes
    write_report(job, out, log_to_mlflow=False, parallel=False)
    assert _leftovers(out) == [f".rep.report-{os.getpid() + 1}x"]
