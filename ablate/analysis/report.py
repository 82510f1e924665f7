"""`ablate report JOB.yaml --out DIR`: the page, the PNGs and `trials.csv` of a study.

The report is one self-contained HTML page (`ablate.analysis.page`) that opens with the "less is
more" verdict (`ablate.analysis.verdict`: each smaller volume against the largest, simultaneous
one-sided bounds with the seed noise pooled over the design's cells, family-wise error 5% unless
`alpha` says otherwise), plus the PNG files and `trials.csv`; the plots and the page are also
logged to the sweep's parent MLflow run (under `report/`). `ablate propose` lives in
`ablate.analysis.propose` (re-exported here).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from ablate import tracking
from ablate.analysis.across_groups import group_curves, group_notes, group_scope
from ablate.analysis.findings import Findings, analyse
from ablate.analysis.forked import Child, can_fork
from ablate.analysis.groups import main_group, plot_transfer, split_groups
from ablate.analysis.ladder_view import ladder_view
from ablate.analysis.load import as_job, completed, load, task_types
from ablate.analysis.page import CSS, TITLES, render_page
from ablate.analysis.plot_effects import plot_effects
from ablate.analysis.plots import PLOTS, load_pyplot, plot_all
from ablate.analysis.propose import Enqueued, propose_and_enqueue, search_bounds
from ablate.analysis.recommend import Recommendation, check_volume, recommend
from ablate.analysis.stats import Cells, study_searched
from ablate.analysis.surrogates import Proposal, Surrogates, fit_surrogates
from ablate.analysis.volume_answer import VolumeAnswer, volume_answer
from ablate.bench.judge import is_judged_metric
from ablate.config import JobSpec, redact
from ablate.errors import UserError
from ablate.objectives import metric_range

__all__ = [
    "CSS",
    "FORKED_PLOTS",
    "TITLES",
    "Enqueued",
    "Report",
    "propose_and_enqueue",
    "summary_text",
    "write_report",
]

#: Drawn in a forked process while this one draws the rest (about half the drawing time each).
FORKED_PLOTS = ("domains", "history")
#: Marks a report folder written in place (it holds other files too) until its page is done.
INCOMPLETE = "REPORT_INCOMPLETE.txt"


@dataclass
class Report:
    html: Path
    csv: Path
    plots: dict[str, Path]
    findings: Findings
    surrogates: Surrogates | None
    proposals: list[Proposal]
    notes: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None
    seconds: float = 0.0
    recommendation: Recommendation | None = None
    """Whether proposal 1 is expected to beat the best tried mixture, else the latter."""
    volume_answer: VolumeAnswer | None = None
    """A search study's volume question, put to the surrogate (`volume_answer`)."""


# long: the report's steps in order (load, test, fit, plot, page, MLflow), one or two lines each
def write_report(
    job: JobSpec | str | Path,
    out: str | Path,
    metric: str | None = None,
    volume: float | None = None,
    n_propose: int = 3,
    log_to_mlflow: bool = True,
    parallel: bool | None = None,
    alpha: float = 0.05,
    direction: str | None = None,
) -> Report:
    """Load the study, test (family-wise error `alpha`), fit, plot and write `out/report.html`,
    `out/trials.csv`, PNGs. `parallel` (default: where the OS can fork): the surrogates (scikit-
    learn import, cross-validation, bootstrap proposals) and half the plots run in forked
    processes while this one draws the rest; when the files must go through MLflow (a tracking
    server, remote artifacts), another one imports it and finds the sweep's run from the start.
    The output is the same either way. `direction` (maximize | minimize) of `metric`: see
    `metric_direction`."""
    start = time.perf_counter()
    job = as_job(job)
    check_volume(volume)
    final = Path(out)
    try:
        out = _begin(final)  # the folder the files are written in, swapped in at the end
    except OSError as err:  # a file there, or above it
        raise UserError(
            f"--out {final}: cannot make the report folder ({err.strerror}); give a folder "
            "path, not a file's or one under a file"
        ) from None
    fork = can_fork() if parallel is None else parallel and can_fork()
    children: list[Child] = []  # stopped on the way out, whatever happens
    try:
        mlflow_log = _MlflowLog(job, fork, children) if log_to_mlflow else None
        df = load(job)
        df.attrs["direction"], turned = metric_direction(job, metric, direction)
        df.attrs["range"] = metric_range(job, metric or job.objective.metric)
        column = "value" if metric in (None, job.objective.metric) else metric
        df.attrs["range_of"] = column  # the column `range` bounds
        label, judged = _judged(df, metric or job.objective.metric)
        csv = out / "trials.csv"
        df.to_csv(csv, index=False)
        # models, or settings recorded as a factor: never seed replicates of each other
        shown, part = main_group(groups := split_groups(df))
        for name, group in groups if len(groups) > 1 else ():
            group.attrs["group"] = name  # named in the verdict and the plots' titles
            group.attrs["study_volumes"] = sorted(df["volume"].dropna().unique().tolist())
        search = study_searched(part)
        # a search's bounds (max_share, min_share, its volumes), as `ablate propose` keeps them
        at, keep = search_bounds(job, task_types(completed(part)), volume)
        fit_args = (part, column, at, n_propose, search, out, label, keep)
        fitter = Child(_fit_worker, *fit_args) if fork else None
        if fitter is not None:
            children.append(fitter)
        findings = analyse(part, column, alpha=alpha)
        findings.scope = group_scope(df, groups, shown)
        plots = _draw(part, out, column, label, findings.cells, children if fork else None)
        fitted = fitter.result() if fitter is not None else _fit(*fit_args)
        surrogates, rec, note, answer = (
            fitted.surrogates, fitted.recommendation, fitted.note, fitted.answer
        )  # fmt: skip
        if fitted.effects is not None:  # beside the simplex plot, the other view of shares
            items = list(plots.items())
            at = next((i + 1 for i, (k, _) in enumerate(items) if k == "simplex"), len(items))
            plots = dict([*items[:at], ("effects", fitted.effects), *items[at:]])
        proposals = rec.proposals if rec is not None else []
        notes = [note] if note else []
        notes += turned + judged + group_notes(df, groups, findings, column, alpha)
        if transfer := plot_transfer(df, out / "rank_transfer.png", column, label):
            plots["rank_transfer"] = transfer
        plots.update(group_curves(groups, shown, out, column, label))
        ladder, rungs = ladder_view(job, df.attrs["task_types"], out / "ladder.png", label)
        notes += [line.strip() for line in ladder[1:]]  # (after its "ladder:" heading)
        plots.update({"ladder": rungs} if rungs else {})
        (out / "report.html").write_text(
            render_page(job, df, label, findings, surrogates, rec, plots, notes, answer)
        )
        _publish(out, final)
        page, csv = final / "report.html", final / "trials.csv"
        plots = {k: final / p.relative_to(out) for k, p in plots.items()}
        run_id = None
        if mlflow_log is not None:
            try:  # the report is written: a tracking server that fails does not undo it
                run_id = mlflow_log.log([page, csv, *plots.values()], df.attrs.get("study_uid"))
            except Exception as err:
                first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                notes.append(f"not logged to MLflow at {job.tracking_shown}: {redact(first)}")
            else:
                if run_id is None:
                    notes.append(
                        f"no MLflow sweep run of study `{job.study}` in {job.tracking_shown}"
                    )
    except BaseException:
        if out != final:  # a failed report leaves no folder of half-written files behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        for child in children:
            child.stop()
    return Report(
        page, csv, plots, findings, surrogates, proposals, notes, run_id,
        time.perf_counter() - start, rec, answer,
    )  # fmt: skip


def _begin(out: Path) -> Path:
    """Where to write `out`: a sibling `.NAME.report-PID` swapped in by `_publish` (a kill leaves
    the old report or the new, whole); a folder with other files, or the working one, in place."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
    here = out.resolve()
    for left in here.parent.glob(f".{glob.escape(here.name)}.report-*"):
        pid, _, old = left.name[len(here.name) + 9 :].partition(".")  # PID or PID.old
        if pid.isdigit() and old in ("", "old") and not _alive(int(pid)):  # a killed run's
            if old and not out.exists():  # killed mid-swap: its old report put back
                left.rename(out)
            shutil.rmtree(left, ignore_errors=True)
    mine = ("report.html", "trials.csv", INCOMPLETE)
    theirs = out.is_dir() and any(
        p.name not in mine and p.suffix != ".png" and p.name[:6] != "group-" for p in out.iterdir()
    )
    if theirs or Path.cwd().is_relative_to(here):
        (out / "report.html").unlink(missing_ok=True)
        (out / INCOMPLETE).write_text("`ablate report` stopped before it finished: rerun it\n")
        return out
    work = here.parent / f".{here.name}.report-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def _publish(work: Path, out: Path) -> None:
    """The finished report in `work` (`_begin`) in place as `out`."""
    if work != out:
        old = work.with_name(work.name + ".old")
        if out.exists():
            out.rename(old)
        work.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    (out / INCOMPLETE).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as err:  # EPERM: another user's process, alive
        return err.errno != errno.ESRCH
    return True


def metric_direction(
    job: JobSpec, metric: str | None, direction: str | None
) -> tuple[str, list[str]]:
    """Which way `metric` is better, and a note when that is not the job's objective direction:
    `direction` when given; the job's for its own objective metric; lower for a loss (a name
    containing `loss`: bench_loss, heldout_loss/<label>, train_loss); else higher."""
    if direction not in (None, "maximize", "minimize"):
        raise UserError(f"--direction must be maximize or minimize, got {direction!r}")
    if direction is None:
        if metric in (None, job.objective.metric):
            return job.objective.direction, []
        direction = "minimize" if "loss" in metric.lower() else "maximize"
    if direction == job.objective.direction:
        return direction, []
    better = "lower" if direction == "minimize" else "higher"
    other = "maximize" if direction == "minimize" else "minimize"
    return direction, [
        f"`{metric}` is analysed with {better} values better (--direction {other} to turn it)."
    ]


def _judged(df: Any, metric: str) -> tuple[str, list[str]]:
    """The metric's label, naming the LLM judge(s) that scored it, and a note saying so."""
    if "judge" not in df or not is_judged_metric(metric):
        return metric, []
    judges = sorted(df.loc[df["state"] == "COMPLETE", "judge"].dropna().unique())
    if not judges:
        return metric, []
    names = "; ".join(judges)
    return f"{metric} (judge {names})", [f"`{metric}` is scored by the LLM judge {names}."]


class _MlflowLog:
    """The report's files into the sweep's parent MLflow run, the cheapest way there is.

    A SQLite tracking store with local artifacts is read and written without MLflow (whose
    import alone costs 2-3 CPU seconds); otherwise a forked process imports MLflow and finds the
    run while this one works (or, where nothing can fork, this one does it at the end)."""

    def __init__(self, job: JobSpec, fork: bool, children: list[Child]) -> None:
        self.job = job
        quick = tracking.find_sweep_run_sqlite(job)
        self.via_mlflow = quick is None or (quick[0] is not None and not quick[1])
        self.child = Child(_mlflow_worker, job) if self.via_mlflow and fork else None
        if self.child is not None:
            children.append(self.child)

    def log(self, files: list[Path], uid: str | None) -> str | None:
        """Log `files` under `report/` of the parent run of the study whose own id is `uid`; the
        run's id, or None when the study has no sweep run."""
        if not self.via_mlflow:
            quick = tracking.find_sweep_run_sqlite(self.job, uid)
            assert quick is not None
            run_id, folder = quick
            if run_id is not None and folder is not None:
                tracking.copy_run_artifacts(folder, files, "report")
            return run_id
        if self.child is not None:
            self.child.send((files, uid))
            return cast("str | None", self.child.result())
        return _mlflow_log(self.job, files, uid)


def _draw(
    df: Any, out: Path, column: str, label: str, cells: Cells, children: list[Child] | None
) -> dict[str, Path]:
    """Every plot, in PLOTS order; given `children` (forking), FORKED_PLOTS are drawn in a
    forked process (matplotlib imported once, before it) while this one draws the rest."""
    if children is None:
        return plot_all(df, out, column, label, cells)
    load_pyplot()
    drawer = Child(_plot_worker, df, out, column, label, cells, FORKED_PLOTS)
    children.append(drawer)
    mine = tuple(p for p in PLOTS if p not in FORKED_PLOTS)
    drawn = {**plot_all(df, out, column, label, cells, mine), **drawer.result()}
    return {k: drawn[k] for k in PLOTS if k in drawn}


def _plot_worker(conn: Any, *args: Any) -> dict[str, Path]:
    return plot_all(*args)


@dataclass
class Fitted:
    """What the surrogate side of a report gives: the surrogates and the recommendation, or
    `note` saying why none; a search study's volume answer; the per-type effects plot."""

    surrogates: Surrogates | None = None
    recommendation: Recommendation | None = None
    note: str | None = None
    answer: VolumeAnswer | None = None
    effects: Path | None = None


def _fit(
    df: Any,
    column: str,
    volume: float | None,
    n_propose: int,
    search: bool,
    out: Path,
    label: str,
    keep: Any = None,
) -> Fitted:
    """Surrogates and the recommendation (proposals, or the best tried mixture), or why none;
    for a search study (`search`), its volume question put to the surrogate; the effect of each
    type's share around the recommended mixture (`effects.png`, drawn here: the models are)."""
    try:
        surrogates = fit_surrogates(df, column)
        rec = recommend(surrogates, volume, n=n_propose, keep=keep) if n_propose > 0 else None
    except UserError as err:
        return Fitted(note=f"No surrogate was fitted: {err}.")
    fitted = Fitted(surrogates, rec)
    degenerate = (ValueError, np.linalg.LinAlgError)  # a degenerate study: no curve, no claim
    if search:
        with contextlib.suppress(*degenerate):
            fitted.answer = volume_answer(surrogates)
    if rec is not None:
        with contextlib.suppress(*degenerate):
            fitted.effects = plot_effects(surrogates, rec, out / "effects.png", label)
    return fitted


def _fit_worker(conn: Any, *fit_args: Any) -> Fitted:
    fitted = _fit(*fit_args)
    if fitted.surrogates is not None:
        # the fitted models stay behind: unpickling them would import scikit-learn here too
        # (`Surrogates.model` refits one on demand)
        fitted.surrogates.models = {}
    return fitted


def _mlflow_log(job: JobSpec, files: list[Path], uid: str | None) -> str | None:
    run_id = tracking.find_sweep_run(job, uid)
    if run_id is not None:
        tracking.log_parent_artifacts(job, run_id, files, "report")
    return run_id


def _mlflow_worker(conn: Any, job: JobSpec) -> str | None:
    """Import MLflow (and ask it once: its client warmed up) while the parent plots; then find
    the run of the study id it sends and log the files it sends."""
    tracking.find_sweep_run(job)
    files, uid = conn.recv()
    return _mlflow_log(job, files, uid) if files else tracking.find_sweep_run(job, uid)


def summary_text(report: Report) -> str:
    """What `ablate report` prints: the verdict, the findings, the surrogates, the files."""
    f = report.findings
    of = f" of {f.group}" if f.group else ""
    lines = [*f.scope, *f.statements()]
    if report.volume_answer is not None:
        lines.insert(len(f.scope) + 1, report.volume_answer.describe(f.metric))
    if report.surrogates is not None:
        lines.append(
            f"Surrogates{of}, held-out Spearman and regret of the top pick by grouped "
            "cross-validation (the best: the lowest regret):"
        )

        def rho(x: float) -> str:  # undefined when every score is the same: no ranking
            return f"{x:.3f}" if x == x else "undefined (constant scores)"

        for cv in report.surrogates.cv.values():
            best = "  (best)" if cv.name == report.surrogates.best else ""
            lines.append(
                f"  {cv.name:11s} {rho(cv.spearman)} over mixtures, {rho(cv.spearman_trials)} over "
                f"trials, RMSE {cv.rmse:.4f}, regret of the top pick {cv.regret:.4f}, "
                f"{cv.folds} folds{best}"
            )
    for i, p in enumerate(report.proposals, 1):
        lines.append(f"Proposal {i}{of}: {p.describe(f.metric)}")
    if report.recommendation is not None:
        lines.append(report.recommendation.statement(f.metric))
    lines += report.notes
    lines.append(
        f"wrote {report.html}, {report.csv} and {len(report.plots)} plots in {report.seconds:.1f} s"
        + (f"; logged to MLflow run {report.mlflow_run_id}" if report.mlflow_run_id else "")
    )
    return "\n".join(lines)
