"""Plots of a study (matplotlib, PNG): each function takes the trials table and a file to write.

Error bars are 95% t intervals of each cell's mean with the seed SD pooled over the cells
(`stats.cell_stats`), the subtitle says so; a study where no mixture has two seeds gets no bar,
and the axis title says so. Nothing here invents an interval. In a study of several models the
titles name the model plotted (`df.attrs["group"]`). The verdicts are not read off these bars: they come from the calibrated tests of
`ablate.analysis.verdict` (seed noise pooled over all cells, simultaneous bounds), so two
overlapping bars may still differ beyond seed noise, and two apart may not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ablate.analysis.load import completed
from ablate.analysis.plot_base import DPI, direction_word, load_pyplot, titled, volume_axis
from ablate.analysis.plot_base import label as _label
from ablate.analysis.plot_base import save as _save
from ablate.analysis.plot_shares import plot_simplex
from ablate.analysis.stats import Cells, add_levels, cell_stats, study_searched
from ablate.analysis.tables import mixture_means
from ablate.analysis.words import bal

#: Balance levels' points at one volume are set apart by this much (log10 rows) per level.
DODGE = 0.02


def _curves(ax: Any, cells: Cells, replicated: bool) -> None:
    """One line per balance level, its points dodged sideways (`DODGE`) so that the levels'
    bars at one volume do not cover each other; a search's bins get points, no lines (bins of
    different mixtures are no curve)."""
    t = cells.table.reset_index()
    levels = sorted(t["bal_level"].unique())
    for i, (b, part) in enumerate(t.groupby("bal_level")):
        part = part.sort_values("vol_level")
        yerr = np.vstack([part["mean"] - part["low"], part["high"] - part["mean"]])
        yerr = np.nan_to_num(yerr, nan=0.0)
        shift = 10 ** (DODGE * (i - (len(levels) - 1) / 2))
        ax.errorbar(
            part["vol_level"] * shift,
            part["mean"],
            yerr=yerr if replicated and not cells.searched else None,
            marker="o",
            capsize=3,
            ls="none" if cells.searched else "-",
            label=bal(b),
        )
    volume_axis(ax, t["vol_level"].unique())
    ax.grid(True, alpha=0.3)


def plot_volume_balance(
    df: Any,
    out: Path,
    metric: str = "value",
    label: str | None = None,
    cells: Cells | None = None,
) -> Path:
    """Score against volume (log axis), one line per balance level, 95% t interval bars; a
    search study's trials one point each, coloured by balance (`_searched_trials`)."""
    plt = load_pyplot()
    cells = cells or cell_stats(df, metric)
    if cells.searched:
        return _searched_trials(plt, df, out, metric, label)
    replicated = cells.df >= 1
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=DPI)
    _curves(ax, cells, replicated)
    name = _label(df, metric, label)
    bars = (
        f"bars: {cells.describe()}"
        if replicated
        else "one seed per mixture: no interval can be drawn"
    )
    ax.set_xlabel("training volume (rows, log scale)")
    ax.set_ylabel(f"{name} ({direction_word(df)})")
    title = titled(df, f"{name} against volume per balance level")
    ax.set_title(f"{title}\n{bars}", fontsize=9)
    ax.legend(title="balance (norm. entropy)", fontsize=8)
    return _save(fig, out)


def _searched_trials(plt: Any, df: Any, out: Path, metric: str, label: str | None) -> Path:
    """A search: every completed trial at its own volume, coloured by its balance, no lines and
    no bars (each mixture ran once: bins joined by lines would read as a volume curve)."""
    done = completed(df, metric)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=DPI)
    sc = ax.scatter(
        done["volume"].astype(float), done[metric], c=done["balance"].astype(float),
        cmap="plasma", vmin=0, vmax=1, s=22, edgecolors="k", linewidths=0.3,
    )  # fmt: skip
    volume_axis(ax, done["volume"])
    ax.grid(True, alpha=0.3)
    name = _label(df, metric, label)
    ax.set_xlabel("training volume (rows, log scale)")
    ax.set_ylabel(f"{name} ({direction_word(df)})")
    fig.colorbar(sc, ax=ax, label="balance (norm. entropy)")
    title = titled(df, f"{name} of every searched trial against its volume")
    ax.set_title(
        f"{title}\neach a different mixture run once: not a volume curve (see the surrogate's)",
        fontsize=9,
    )
    return _save(fig, out)


def plot_heatmap(
    df: Any, out: Path, metric: str = "value", label: str | None = None, cells: Cells | None = None
) -> Path:
    """Mean score over seeds in each volume x balance cell, the value written in each."""
    plt = load_pyplot()
    cells = cells or cell_stats(df, metric)
    grid = cells.table["mean"].unstack("bal_level").sort_index()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=DPI)
    cmap = "viridis_r" if df.attrs.get("direction") == "minimize" else "viridis"
    im = ax.imshow(grid.to_numpy().T, origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(len(grid.index)), [f"{v:,.0f}" for v in grid.index], rotation=30)
    ax.set_yticks(range(len(grid.columns)), [bal(b) for b in grid.columns])
    if grid.size <= 150:
        lo, hi = np.nanmin(grid.to_numpy()), np.nanmax(grid.to_numpy())
        for i, v in enumerate(grid.index):
            for j, b in enumerate(grid.columns):
                val = grid.loc[v, b]
                if np.isfinite(val):
                    light = (val - lo) < 0.5 * (hi - lo)
                    if cmap.endswith("_r"):
                        light = not light
                    ax.text(
                        i,
                        j,
                        f"{val:.3f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if light else "black",
                    )
    name = _label(df, metric, label)
    ax.set_xlabel("training volume (rows)")
    ax.set_ylabel("balance (normalised entropy)")
    ax.set_title(titled(df, f"mean {name} over seeds, volume x balance"), fontsize=10)
    fig.colorbar(im, ax=ax, label=name)
    return _save(fig, out)


def domain_metrics(df: Any, prefix: str = "accuracy/") -> list[str]:
    """Per-domain metric columns: `accuracy/<domain>` (group fields `accuracy/k=v` excluded)."""
    return sorted(c for c in df.columns if c.startswith(prefix) and "=" not in c)


def plot_domains(df: Any, out: Path, prefix: str = "accuracy/") -> Path | None:
    """Small multiples: each domain's score against volume, one line per balance level."""
    metrics = domain_metrics(df, prefix)
    if not metrics:
        return None
    plt = load_pyplot()
    ncol = min(4, len(metrics))
    nrow = -(-len(metrics) // ncol)
    fig, axes = plt.subplots(
        nrow,
        ncol,
        figsize=(3.0 * ncol, 2.5 * nrow + 0.6),
        dpi=DPI,
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    replicated = False
    for ax, m in zip(axes.flat, metrics, strict=False):
        cells = cell_stats(df, m, bounds=(0.0, 1.0) if prefix == "accuracy/" else None)
        replicated = cells.df >= 1
        _curves(ax, cells, replicated)
        ax.set_title(m[len(prefix) :], fontsize=9)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    low, high = axes.flat[0].get_ylim()  # (shared by every panel)
    if high - low < 1e-9:  # every score equal (all 0): an axis of 1e-17 offsets otherwise
        axes.flat[0].set_ylim(low - 0.05, high + 0.05)
    for ax in axes[-1]:
        ax.set_xlabel("volume (rows)")
    for ax in axes[:, 0]:
        ax.set_ylabel(prefix.rstrip("/"))
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="balance", loc="upper right", fontsize=7, title_fontsize=7)
    bars = (
        "bars: 95% t interval per cell, seed SD pooled over cells"
        if replicated
        else "one seed: no intervals"
    )
    title = titled(df, f"per-domain {prefix.rstrip('/')} against volume")
    fig.suptitle(f"{title}\n{bars}", fontsize=10)
    return _save(fig, out)


def pareto_front(cost: Any, score: Any, maximize: bool = True) -> np.ndarray:
    """Indices of the points no other point beats on both: less cost and a better score."""
    cost, score = np.asarray(cost, float), np.asarray(score, float)
    s = score if maximize else -score
    order = np.lexsort((-s, cost))  # by cost, then best score first
    front, best = [], -np.inf
    for i in order:
        if s[i] > best:
            front.append(i)
            best = s[i]
    return np.array(front, dtype=int)


def plot_pareto(df: Any, out: Path, metric: str = "value", label: str | None = None) -> Path:
    """Mixtures (mean over seeds) against volume and against GPU-hours (or trial hours), front joined."""
    plt = load_pyplot()
    mix = mixture_means(df, metric)
    maximize = df.attrs.get("direction") != "minimize"
    use_gpu = mix["gpu_hours"].notna().all() and (mix["gpu_hours"] > 0).any()
    cost2, name2 = (
        ("gpu_hours", "GPU-hours (all seeds)")
        if use_gpu
        else ("hours", "trial compute hours (all seeds; GPUs per trial unknown or 0)")
    )
    panels = [("volume", "training volume (rows, log scale)")]
    if mix[cost2].notna().all():
        mix[cost2], unit = _cost_unit(mix[cost2].astype(float))
        panels.append((cost2, name2.replace("hours", unit, 1)))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 4.2), dpi=DPI, squeeze=False
    )
    name = _label(df, metric, label)
    for ax, (col, xlabel) in zip(axes[0], panels, strict=True):
        sc = ax.scatter(
            mix[col], mix["score"], c=mix["balance"], cmap="plasma", vmin=0, vmax=1, s=22
        )
        idx = pareto_front(mix[col], mix["score"], maximize)
        front = mix.iloc[idx].sort_values(col)
        ax.step(  # ringed too: a front of one point (the cheapest is the best) is no line
            front[col], front["score"], where="post", color="k", lw=1.2, marker="o", ms=9,
            mfc="none", label="Pareto front",
        )  # fmt: skip
        if col == "volume":
            volume_axis(ax, mix[col])
        else:
            _cost_axis(ax, mix[col])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"mean {name} over seeds")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.colorbar(sc, ax=axes[0, -1], label="balance")
    fig.suptitle(
        titled(df, f"{name} against cost: mixtures on the front are not beaten by a cheaper one"),
        fontsize=10,
    )
    return _save(fig, out)


def _cost_unit(hours: Any) -> tuple[Any, str]:
    """Hours in a unit that reads: minutes below 0.1 h, seconds below 0.1 min (sim trials)."""
    top = float(hours.max()) if len(hours) else 0.0
    if top >= 0.1:
        return hours, "hours"
    if top * 60 >= 0.1:
        return hours * 60, "minutes"
    return hours * 3600, "seconds"


def _cost_axis(ax: Any, cost: Any) -> None:
    """A log cost axis with major labels only (matplotlib's minor labels collide); under a
    decade of cost, which has no major tick, 4 labelled ticks across it."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    lo, hi = float(np.min(cost)), float(np.max(cost))
    if 0 < lo < hi < 10 * lo:
        ticks = np.geomspace(lo, hi, 4)
        ax.set_xticks(ticks, [f"{t:.2g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_history(df: Any, out: Path, metric: str = "value", label: str | None = None) -> Path:
    """The objective of every completed trial in trial order; for a search, the best so far as
    a step line (a fixed design runs in its own order: captioned so, no best-so-far line)."""
    from matplotlib.ticker import MaxNLocator

    plt = load_pyplot()
    done = completed(df, metric).sort_values("trial")
    maximize = df.attrs.get("direction") != "minimize"
    best = done[metric].cummax() if maximize else done[metric].cummin()
    fixed = not study_searched(df)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=DPI)
    ax.scatter(done["trial"], done[metric], s=12, alpha=0.7, label="trial")
    if not fixed:  # a fixed design's order is the design's: its best so far is no learning
        ax.step(done["trial"], best, where="post", color="C3", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    failed = df[df["state"] == "FAIL"]
    if len(failed):
        for k, x in enumerate(failed["trial"]):
            ax.axvline(x, color="0.7", lw=0.6, ls=":", label="failed trial" if k == 0 else None)
    name = _label(df, metric, label)
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"{name} ({direction_word(df)})")
    what = "trials in run order" if fixed else "optimisation history"
    title = titled(df, f"{what}: {len(done)} completed trials")
    if fixed:
        title += "\na fixed design: trial order is the design's order, not a search learning"
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out)


#: Every plot, in the order of the report.
PLOTS = ("volume_balance", "heatmap", "domains", "pareto", "simplex", "history")


def plot_all(
    df: Any,
    out_dir: Path,
    metric: str = "value",
    label: str | None = None,
    cells: Cells | None = None,
    only: tuple[str, ...] = PLOTS,
) -> dict[str, Path]:
    """Every plot that applies to this study (or those named in `only`), written to `out_dir`;
    name -> PNG path."""
    out_dir = Path(out_dir)
    cells = cells or cell_stats(df, metric)
    draw = {
        "volume_balance": lambda: plot_volume_balance(
            df, out_dir / "volume_balance.png", metric, label, cells
        ),
        "heatmap": lambda: plot_heatmap(df, out_dir / "heatmap.png", metric, label, cells),
        "domains": lambda: plot_domains(df, out_dir / "domains.png"),
        "pareto": lambda: plot_pareto(df, out_dir / "pareto.png", metric, label),
        "simplex": lambda: plot_simplex(df, out_dir / "simplex.png", metric, label),
        "history": lambda: plot_history(df, out_dir / "history.png", metric, label),
    }
    plots = {name: draw[name]() for name in PLOTS if name in only}
    return {k: v for k, v in plots.items() if v is not None}


__all__ = [
    "PLOTS",
    "add_levels",
    "domain_metrics",
    "mixture_means",
    "pareto_front",
    "plot_all",
    "plot_domains",
    "plot_heatmap",
    "plot_history",
    "plot_pareto",
    "plot_simplex",
    "plot_volume_balance",
]
