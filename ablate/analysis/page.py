"""The report page: one self-contained HTML file (plots embedded as base64 PNG) that opens with
the "less is more" verdict, then the findings, the proposed mixtures, the surrogates' held-out
quality, the plots and the cell and mixture tables."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from ablate.analysis.findings import Findings
from ablate.analysis.recommend import Recommendation
from ablate.analysis.surrogates import Proposal, Surrogates
from ablate.analysis.tables import mixture_table
from ablate.analysis.volume_answer import VolumeAnswer
from ablate.analysis.words import bal
from ablate.config import JobSpec

TITLES = {
    "volume_balance": "Score against volume, one line per balance level",
    "heatmap": "Volume x balance",
    "domains": "Per domain",
    "pareto": "Pareto front: score against cost",
    "simplex": "Mixtures' shares, coloured by score",
    "effects": (
        "Each task type's share, moved from the recommended mixture (the best tried one when no "
        "proposal is expected to beat it; surrogate)"
    ),
    "history": "Optimisation history",
    "rank_transfer": "Rank transfer: one model's mixture means against another's",
    "ladder": "Ladder: each rung's mixtures on its model, a promoted mixture's rungs joined",
}

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

#: The cell table lists at most this many cells; the mixture table is left out above it.
MAX_CELLS = 200


def render_page(
    job: JobSpec,
    df: Any,
    metric: str,
    findings: Findings,
    surrogates: Surrogates | None,
    rec: Recommendation | None,
    plots: dict[str, Path],
    notes: list[str],
    answer: VolumeAnswer | None = None,
) -> str:
    """The whole page, section by section (`answer`: a search's volume question, put to the
    surrogate)."""
    parts = _verdict(job, metric, findings, answer)
    of = f" ({findings.group})" if findings.group else ""
    if rec is not None and rec.proposals:
        parts += _proposals(job, metric, rec.proposals, of)
    if rec is not None:
        parts.append(f"<p><b>{_e(rec.statement(metric))}</b></p>")
    if surrogates is not None:
        parts += _surrogates(surrogates, of)
    parts += [f"<p><i>{_e(n)}</i></p>" for n in notes]
    parts += _plots(plots, of)
    parts += _cells_and_mixtures(df, findings)
    parts.append("<p>Every trial: <a href='trials.csv'>trials.csv</a>.</p></body></html>")
    return "\n".join(parts)


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


def _verdict(job: JobSpec, metric: str, f: Findings, answer: VolumeAnswer | None) -> list[str]:
    """The head, the verdict, the findings and how the intervals were computed."""
    status = f.verdict
    who = f"{_e(f.group[:1].upper() + f.group[1:])}: " if f.group else ""
    scope = "" if f.searched else f" {_e(f.scope_words())}"
    if f.searched and answer is None:
        said = " No surrogate could be fitted to put the volume question to."
    else:
        said = f" {_e(answer.describe(metric))}" if answer is not None else ""
    return [
        f"<!doctype html><html><head><meta charset='utf-8'><title>ablate report: {_e(job.study)}"
        f"</title><style>{CSS}</style></head><body>",
        f"<h1>Study <code>{_e(job.study)}</code>: is less more?</h1>",
        *(f"<p><b>{_e(line)}</b></p>" for line in f.scope),
        f"<div class='verdict {status.replace(' ', '-')}'><b>{who}&ldquo;Less is more&rdquo; "
        f"{_e(status)}</b>{scope}"
        f"{'' if f.searched else f' (family-wise error {f.alpha:.0%})'}: "
        f"{_e(f.overall.reason)}.{said}</div>",
        f"<p>{f.n_complete} completed trials; {_e(f.failures.summary())}"
        f"{f'; {f.to_come} still waiting or running (a sweep under way, or stopped)' if f.to_come else ''}"
        "; objective "
        f"<code>{_e(metric)}</code> ({_e(f.direction)}). Storage <code>{_e(job.storage_shown)}</code>."
        "</p>",
        "<h2>Findings</h2><ul>",
        *(f"<li>{_e(s)}</li>" for s in f.statements()[1:] if s != f.method),
        "</ul>",
        *_comparisons(f),
        f"<p><small>{_e(f.method)} The cell table's intervals are the plots' error bars, one "
        "cell at a time: they do not decide the verdict.</small></p>",
    ]


def _comparisons(f: Findings) -> list[str]:
    """Every smaller volume against the largest, with the bounds the verdicts use."""
    rows = [
        [
            "overall" if r.balance is None else bal(r.balance),
            f"{c.volume:,.0f}" if c.volume >= 1 else f"{c.volume:g}",
            f"{r.largest_volume:,.0f}" if (r.largest_volume or 0) >= 1 else _e(r.largest_volume),
            _num(c.effect),
            _num(c.low),
            _num(c.high_sim),
            _num(c.high),
            _e(c.outcome),
        ]
        for r in _compared(f)
        for c in r.comparisons
    ]
    if not rows:
        return []
    level = f"{1 - f.alpha:.0%}"
    header = [
        "balance",
        "smaller volume",
        "largest",
        "difference (+: smaller better)",
        f"simultaneous {level} lower bound",
        f"simultaneous {level} upper bound",
        f"{level} upper bound (every smaller volume worse: all below 0)",
        "this comparison (by its simultaneous bounds)",
    ]
    note = (
        f"<p><small>The rows of one balance level (or overall) are one family: its bounds hold "
        f"together at {level}. Each level is its own family, so with no effect at all some row "
        "of some level reads better or worse by chance more often than that.</small></p>"
    )
    return ["<h2>Each smaller volume against the largest</h2>", _table(header, rows), note]


def _compared(f: Findings) -> list[Any]:
    """The tests whose comparisons the table lists: the overall one and each level's, the
    overall left out when it averaged over one level only (its rows would copy that level's)."""
    levels = f.overall.levels
    single = len(levels) == 1 and any(r.balance == levels[0] for r in f.per_level)
    return [*([] if single else [f.overall]), *f.per_level]


def _proposals(job: JobSpec, metric: str, proposals: list[Proposal], of: str) -> list[str]:
    """The proposed mixtures with their predicted score, and the command that runs them."""
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
    header = [
        "#", *types, "volume", f"predicted {metric}", "95% bootstrap",
        "L1 to nearest tried shares (volume not counted)",
    ]  # fmt: skip
    return [
        f"<h2>Proposed mixtures{_e(of)}</h2>",
        _table(header, rows),
        f"<p>By the <code>{_e(proposals[0].model)}</code> surrogate. Run them: "
        f"<code>{_e(job.command('propose', job.source or 'JOB.yaml'))} -n {len(proposals)}</code> "
        f"then <code>{_e(job.command('sweep', job.source or 'JOB.yaml'))}</code>.{_masked(job)}</p>",
    ]


def _masked(job: JobSpec) -> str:
    """The note under commands whose `--set` password shows as `***` (never written here)."""
    if not job.masked_overrides:
        return ""
    return (
        " The password of a <code>--set</code> URL shows as <code>***</code>: put it back "
        "before running, or better keep the URL in the job file, so that the commands need no "
        "<code>--set</code> for it."
    )


def _surrogates(surrogates: Surrogates, of: str) -> list[str]:
    """Each surrogate's held-out quality, the best marked."""
    rows = [
        [
            _e(c.name + (" (best)" if c.name == surrogates.best else "")),
            _num(c.spearman),
            _num(c.spearman_trials),
            _num(c.rmse, 4),
            _num(c.regret, 4),
            str(c.folds),
        ]
        for c in surrogates.cv.values()
    ]
    header = [
        "model",
        "Spearman over mixtures",
        "Spearman over trials",
        "RMSE",
        "regret of the top pick",
        "folds",
    ]
    regrets = {round(c.regret, 12) for c in surrogates.cv.values() if math.isfinite(c.regret)}
    tied = ""
    if len(regrets) == 1 and len(surrogates.cv) > 1:
        value = next(iter(regrets))
        why = ": each ranked the best held-out mixture first in every fold" if value == 0 else ""
        tied = (
            f" Every model ties on regret ({_num(value, 4)}{why}), so the pick fell to the "
            "held-out Spearman."
        )
    return [
        f"<h2>Surrogates{_e(of)} (held-out, grouped 5-fold cross-validation)</h2>",
        _table(header, rows),
        "<p>The best proposes: the lowest held-out regret of the top pick (the best held-out "
        f"mixture's score less that of the one the model ranked first), then Spearman.{tied}</p>",
    ]


def _plots(plots: dict[str, Path], of: str) -> list[str]:
    """Every plot, embedded as a base64 PNG under its title (the main group's named by `of`)."""
    parts = ["<h2>Plots</h2>"]
    for name, path in plots.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        mine = name in TITLES and name not in ("rank_transfer", "ladder")
        title = TITLES.get(name, name) + (of if mine else "")
        parts.append(
            f"<h3>{_e(title)}</h3><img alt='{_e(name)}' src='data:image/png;base64,{data}'>"
        )
    return parts


def _cells_and_mixtures(df: Any, f: Findings) -> list[str]:
    """The volume x balance cells (at most MAX_CELLS) and, below that many, every mixture."""
    cells = f.cells.table.reset_index()
    cell_rows = [
        [
            f"{r.vol_level:,.0f}",
            bal(r.bal_level),
            str(int(r.n)),
            _num(r.mean),
            _num(r.low),
            _num(r.high),
        ]
        for r in cells.itertuples()
    ]
    levels = f.overall.levels
    if len(levels) > 1 and not f.searched:  # what the verdict's overall scores are
        over = "/".join(bal(b) for b in levels)
        for v, part in cells[cells["bal_level"].isin(levels)].groupby("vol_level"):
            if len(part) == len(levels):
                row = [
                    f"{v:,.0f}",
                    f"overall (mean over balance {over})",
                    "-",
                    _num(part["mean"].mean()),
                ]
                cell_rows.append([*row, "-", "-"])
    what = "trials" if f.searched else "seeds"
    parts = [
        f"<h2>Cells: mean over {what} and {_e(f.cells.describe())} (the plots' error bars)</h2>",
        _table(["volume", "balance", what, "mean", "low", "high"], cell_rows[:MAX_CELLS]),
    ]
    if len(cells) > MAX_CELLS:
        return parts
    table = mixture_table(df)
    mark = table["proposed"] if "proposed" in table else [False] * len(table)
    mixture_rows = [
        [
            _e(i) + (" (proposed)" if m else ""),
            f"{r.volume:,.0f}",
            bal(round(r.balance, 3)),  # (as the levels print)
            str(int(r.seeds)),
            str(int(r.failed)),
            _num(r.mean),
            _num(r.min),
            _num(r.max),
        ]
        for i, m, r in zip(table.index, mark, table.itertuples(index=False), strict=True)
    ]
    header = ["mixture", "volume", "balance", "seeds", "failed", "mean", "min", "max"]
    return [*parts, "<h2>Mixtures</h2>", _table(header, mixture_rows)]
