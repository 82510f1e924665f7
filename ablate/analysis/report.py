"""`ablate report JOB.yaml --out DIR` and `ablate propose JOB.yaml -n N`.

The report is one self-contained HTML page (plots embedded as base64 PNG) that opens with the
"less is more" verdict, plus the PNG files and `trials.csv`; the plots and the page are also
logged to the sweep's parent MLflow run (under `report/`).
"""

from __future__ import annotations

import base64
import html
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate import tracking
from ablate.analysis.load import load
from ablate.analysis.plots import PLOTS, load_pyplot, plot_all
from ablate.analysis.stats import Findings, analyse
from ablate.analysis.surrogates import Proposal, Surrogates, fit_surrogates
from ablate.analysis.tables import mixture_table
from ablate.config import JobSpec
from ablate.design import SEARCH
from ablate.errors import UserError
from ablate.mixture import Mixture
from ablate.plan import job_task_types, load_job
from ablate.search import cube_params
from ablate.study import driver_lock, enqueue_design, open_study

TITLES = {
    "volume_balance": "Score against volume, one line per balance level",
    "heatmap": "Volume x balance",
    "domains": "Per domain",
    "pareto": "Pareto front: score against cost",
    "simplex": "Proportions",
    "history": "Optimisation history",
}


#: Drawn in a forked process while this one draws the rest (about half the drawing time each).
FORKED_PLOTS = ("domains", "history")


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


def _job(job: JobSpec | str | Path) -> JobSpec:
    return job if isinstance(job, JobSpec) else load_job(job)


def write_report(
    job: JobSpec | str | Path,
    out: str | Path,
    metric: str | None = None,
    volume: float | None = None,
    n_propose: int = 3,
    log_to_mlflow: bool = True,
    parallel: bool | None = None,
) -> Report:
    """Load the study, test, fit, plot and write `out/report.html`, `out/trials.csv`, PNGs.

    `parallel` (default: where the OS can fork): the surrogates (scikit-learn import, cross-
    validation, bootstrap proposals) and half the plots run in forked processes while this one
    draws the rest; when the files must go through MLflow (a tracking server, remote artifacts),
    another one imports it and finds the sweep's run from the start. The output is the same
    either way.
    """
    start = time.perf_counter()
    job = _job(job)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fork = _can_fork() if parallel is None else parallel and _can_fork()
    children: list[_Child] = []
    try:
        # a SQLite tracking store with local artifacts is read and written without MLflow (whose
        # import alone costs 2-3 CPU seconds); otherwise a forked process imports MLflow and
        # finds the run while this one works
        quick = None
        if log_to_mlflow:
            quick = tracking.find_sweep_run_sqlite(job)
        via_mlflow = log_to_mlflow and (quick is None or (quick[0] is not None and not quick[1]))
        tracker = _Child(_mlflow_worker, job) if via_mlflow and fork else None
        if tracker is not None:
            children.append(tracker)
        df = load(job)
        column = "value" if metric in (None, job.objective.metric) else metric
        label = metric or job.objective.metric
        csv = out / "trials.csv"
        df.to_csv(csv, index=False)
        fitter = _Child(_fit_worker, df, column, volume, n_propose) if fork else None
        if fitter is not None:
            children.append(fitter)
        findings = analyse(df, column)
        if fork:  # half the plots in a second process (matplotlib imported once, before it)
            load_pyplot()
            drawer = _Child(_plot_worker, df, out, column, label, findings.cells, FORKED_PLOTS)
            children.append(drawer)
            mine = tuple(p for p in PLOTS if p not in FORKED_PLOTS)
            drawn = {**plot_all(df, out, column, label, findings.cells, mine), **drawer.result()}
            plots = {k: drawn[k] for k in PLOTS if k in drawn}
        else:
            plots = plot_all(df, out, column, label, findings.cells)
        surrogates, proposals, note = (
            fitter.result() if fitter is not None else _fit(df, column, volume, n_propose)
        )
        notes: list[str] = [note] if note else []
        page = out / "report.html"
        page.write_text(_html(job, df, label, findings, surrogates, proposals, plots, notes))
        run_id = None
        if log_to_mlflow:
            files = [page, csv, *plots.values()]
            if not via_mlflow:
                assert quick is not None
                run_id, folder = quick
                if run_id is not None and folder is not None:
                    tracking.copy_run_artifacts(folder, files, "report")
            elif tracker is not None:
                tracker.send(files)
                run_id = tracker.result()
            else:
                run_id = _mlflow_log(job, files)
            if run_id is None:
                notes.append(f"no MLflow sweep run of study `{job.study}` in {job.tracking_uri}")
    finally:
        for child in children:
            child.stop()
    return Report(
        html=page,
        csv=csv,
        plots=plots,
        findings=findings,
        surrogates=surrogates,
        proposals=proposals,
        notes=notes,
        mlflow_run_id=run_id,
        seconds=time.perf_counter() - start,
    )


def _plot_worker(
    conn: Any, df: Any, out: Path, column: str, label: str, cells: Any, names: tuple[str, ...]
) -> dict[str, Path]:
    return plot_all(df, out, column, label, cells, names)


def _fit(
    df: Any, column: str, volume: float | None, n_propose: int
) -> tuple[Surrogates | None, list[Proposal], str | None]:
    """Surrogates and proposals, or why there are none."""
    try:
        surrogates = fit_surrogates(df, column)
        proposals = surrogates.propose(volume, n=n_propose) if n_propose > 0 else []
    except UserError as err:
        return None, [], f"No surrogate was fitted: {err}."
    return surrogates, proposals, None


def _fit_worker(
    conn: Any, df: Any, column: str, volume: float | None, n_propose: int
) -> tuple[Surrogates | None, list[Proposal], str | None]:
    surrogates, proposals, note = _fit(df, column, volume, n_propose)
    if surrogates is not None:
        # the fitted models stay behind: unpickling them would import scikit-learn here too
        # (`Surrogates.model` refits one on demand)
        surrogates.models = {}
    return surrogates, proposals, note


def _mlflow_log(job: JobSpec, files: list[Path]) -> str | None:
    run_id = tracking.find_sweep_run(job)
    if run_id is not None:
        tracking.log_parent_artifacts(job, run_id, files, "report")
    return run_id


def _mlflow_worker(conn: Any, job: JobSpec) -> str | None:
    """Import MLflow and find the run while the parent plots; then log the files it sends."""
    run_id = tracking.find_sweep_run(job)
    files = conn.recv()
    if run_id is not None and files:
        tracking.log_parent_artifacts(job, run_id, files, "report")
    return run_id


def _can_fork() -> bool:
    import multiprocessing
    import sys

    return sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()


def _child_main(conn: Any, fn: Any, args: tuple[Any, ...]) -> None:
    try:
        result: tuple[str, Any] = ("ok", fn(conn, *args))
    except BaseException as err:
        result = ("error", err)
    try:
        conn.send(result)
    except Exception as err:  # an unpicklable result or exception
        conn.send(("error", RuntimeError(f"{type(err).__name__}: {err}; in {result[1]!r}")))


class _Child:
    """`fn(conn, *args)` in a forked process (arguments shared by the fork, not pickled); its
    return value or exception comes back over `conn`, which `fn` may also read from."""

    def __init__(self, fn: Any, *args: Any) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_child_main, args=(theirs, fn, args), daemon=True)
        self.proc.start()
        theirs.close()

    def send(self, obj: Any) -> None:
        self.conn.send(obj)

    def result(self) -> Any:
        try:
            kind, value = self.conn.recv()
        except EOFError:
            self.proc.join()
            raise RuntimeError(
                f"a report worker process died (exit code {self.proc.exitcode})"
            ) from None
        self.proc.join()
        if kind == "error":
            raise value
        return value

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join()
        self.conn.close()


def summary_text(report: Report) -> str:
    """What `ablate report` prints: the verdict, the findings, the surrogates, the files."""
    lines = list(report.findings.statements())
    if report.surrogates is not None:
        lines.append("Surrogates, held-out Spearman by grouped cross-validation:")
        for cv in report.surrogates.cv.values():
            best = "  (best)" if cv.name == report.surrogates.best else ""
            lines.append(
                f"  {cv.name:11s} {cv.spearman:.3f} over mixtures, {cv.spearman_trials:.3f} over "
                f"trials, RMSE {cv.rmse:.4f}, {cv.folds} folds{best}"
            )
    for i, p in enumerate(report.proposals, 1):
        lines.append(f"Proposal {i}: {p.describe(report.findings.metric)}")
    lines += report.notes
    lines.append(
        f"wrote {report.html}, {report.csv} and {len(report.plots)} plots in {report.seconds:.1f} s"
        + (f"; logged to MLflow run {report.mlflow_run_id}" if report.mlflow_run_id else "")
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.verdict{padding:1em 1.2em;border-radius:6px;font-size:1.1em;margin:1em 0}
.holds{background:#e3f4e3;border-left:6px solid #2a8a2a}
.does-not-hold{background:#fbe7e7;border-left:6px solid #b22}
.cannot-be-decided{background:#fff5d6;border-left:6px solid #c90}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.3em 0 1.2em}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return _e(x)
    return "-" if not math.isfinite(v) else f"{v:.{digits}f}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(
    job: JobSpec,
    df: Any,
    metric: str,
    f: Findings,
    surrogates: Surrogates | None,
    proposals: list[Proposal],
    plots: dict[str, Path],
    notes: list[str],
) -> str:
    status = f.verdict
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>ablate report: {_e(job.study)}"
        f"</title><style>{CSS}</style></head><body>",
        f"<h1>Study <code>{_e(job.study)}</code>: is less more?</h1>",
        f"<div class='verdict {status.replace(' ', '-')}'><b>&ldquo;Less is more&rdquo; "
        f"{_e(status)}</b> over all balance levels: {_e(f.overall.reason)}.</div>",
        f"<p>{f.n_complete} completed trials, {f.n_failed} failed; objective <code>{_e(metric)}</code> "
        f"({_e(f.direction)}). Storage <code>{_e(job.storage_url)}</code>.</p>",
        "<h2>Findings</h2><ul>",
        *(f"<li>{_e(s)}</li>" for s in f.statements()[1:]),
        "</ul>",
        "<p><small>Intervals: 95% percentile bootstrap over seed replicates, resampled within "
        "each mixture (residuals inflated by sqrt(n/(n-1))). The &ldquo;less is more&rdquo; effect "
        "is the best smaller volume minus the largest, the choice of the best included in every "
        "replicate. It holds when the interval lies above 0, does not hold when the largest volume "
        "scores at least as well, and cannot be decided otherwise.</small></p>",
    ]
    if proposals:
        parts.append("<h2>Proposed mixtures</h2>")
        types = list(proposals[0].proportions)
        rows = [
            [
                str(i),
                *(_num(p.proportions[t]) for t in types),
                f"{p.volume:,.0f}",
                _num(p.predicted),
                f"{_num(p.low)} to {_num(p.high)}",
                _num(p.distance, 2),
            ]
            for i, p in enumerate(proposals, 1)
        ]
        parts.append(
            _table(
                [
                    "#",
                    *types,
                    "volume",
                    f"predicted {metric}",
                    "95% bootstrap",
                    "L1 to nearest tried",
                ],
                rows,
            )
        )
        parts.append(
            f"<p>By the <code>{_e(proposals[0].model)}</code> surrogate. Run them: "
            f"<code>ablate propose {_e(job.source or 'JOB.yaml')} -n {len(proposals)}</code> "
            "then <code>ablate sweep</code>.</p>"
        )
    if surrogates is not None:
        parts.append("<h2>Surrogates (held-out, grouped 5-fold cross-validation)</h2>")
        parts.append(
            _table(
                ["model", "Spearman over mixtures", "Spearman over trials", "RMSE", "folds"],
                [
                    [
                        _e(c.name + (" (best)" if c.name == surrogates.best else "")),
                        _num(c.spearman),
                        _num(c.spearman_trials),
                        _num(c.rmse, 4),
                        str(c.folds),
                    ]
                    for c in surrogates.cv.values()
                ],
            )
        )
    for n in notes:
        parts.append(f"<p><i>{_e(n)}</i></p>")
    parts.append("<h2>Plots</h2>")
    for name, path in plots.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f"<h3>{_e(TITLES.get(name, name))}</h3><img alt='{_e(name)}' src='data:image/png;base64,{data}'>"
        )
    cells = f.cells.table.reset_index()
    parts.append("<h2>Cells: mean over seeds and 95% bootstrap interval</h2>")
    parts.append(
        _table(
            ["volume", "balance", "seeds", "mean", "low", "high"],
            [
                [
                    f"{r.vol_level:,.0f}",
                    _num(r.bal_level, 2),
                    str(int(r.n)),
                    _num(r.mean),
                    _num(r.low),
                    _num(r.high),
                ]
                for r in cells.itertuples()
            ][:200],
        )
    )
    if len(cells) <= 200:
        table = mixture_table(df)
        parts.append("<h2>Mixtures</h2>")
        parts.append(
            _table(
                ["mixture", "volume", "balance", "seeds", "mean", "min", "max"],
                [
                    [
                        _e(i),
                        f"{r.volume:,.0f}",
                        _num(r.balance, 2),
                        str(int(r.seeds)),
                        _num(r.mean),
                        _num(r.low),
                        _num(r.high),
                    ]
                    for i, r in zip(table.index, table.itertuples(index=False), strict=True)
                ],
            )
        )
    parts.append("<p>Every trial: <a href='trials.csv'>trials.csv</a>.</p></body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- propose


@dataclass
class Enqueued:
    proposals: list[Proposal]
    trials: int
    """Trials enqueued (proposals x seeds, less those already in the study)."""
    model: str
    spearman: float


def propose_and_enqueue(
    job: JobSpec | str | Path,
    n: int,
    volume: float | None = None,
    seeds: tuple[int, ...] | None = None,
    model: str | None = None,
    metric: str | None = None,
    dry_run: bool = False,
) -> Enqueued:
    """Fit the surrogates, take the n best mixtures at `volume` and enqueue them (x seeds) into
    the job's study; the next `ablate sweep JOB.yaml` runs them before anything else.

    Enqueued like the sweep's own points: under the study's driver lock (a running sweep
    refuses it, naming its driver), skipping design points already in the study, and on a
    search study with the sampler's coordinates of each mixture, so the sampler learns the
    parameters the trial trains on."""
    job = _job(job)
    if n < 1:
        raise UserError(f"-n must be at least 1, got {n}")
    df = load(job)
    column = "value" if metric in (None, job.objective.metric) else metric
    sur = fit_surrogates(df, column)
    name = model or sur.best
    proposals = sur.propose(volume, n=n, name=name)
    seeds = tuple(seeds) if seeds else tuple(job.design.seeds)
    if dry_run:
        return Enqueued(proposals, 0, name, sur.cv[name].spearman)
    study = open_study(job, create=False)
    with driver_lock(job, study):
        stamp = len(study.get_trials(deepcopy=False))
        mixtures, extra = [], {}
        for i, p in enumerate(proposals):
            vol = round(p.volume) if p.volume >= 1 else p.volume
            for seed in seeds:
                mix = Mixture(
                    name=f"prop{stamp}-{i}-v{vol:g}-s{seed}",
                    volume=vol,
                    proportions=p.proportions,
                    taxonomy=job.taxonomy,
                    seed=int(seed),
                )
                mixtures.append(mix)
                extra[mix.name] = {"proposed_by": name, "predicted": p.predicted}
        params = None
        if job.design.kind == SEARCH:
            types = job_task_types(job)
            params = lambda m: cube_params(job, types, m)  # noqa: E731
        count = enqueue_design(study, mixtures, params, extra=lambda m: extra[m.name])
    return Enqueued(proposals, count, name, sur.cv[name].spearman)
