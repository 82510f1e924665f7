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

from ablate.analysis.load import completed, task_types
from ablate.analysis.stats import Cells, add_levels, cell_stats
from ablate.analysis.tables import mixture_means

DPI = 110


def load_pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:  # (a constrained layout lays itself out)
        fig.tight_layout()
    fig.savefig(out)
    load_pyplot().close(fig)
    return out


def _label(df: Any, metric: str, label: str | None) -> str:
    if label:
        return label
    return str(df.attrs.get("metric", "score")) if metric == "value" else metric


def _titled(df: Any, title: str) -> str:
    """`title`, naming the model (or settings) plotted in a study of several."""
    group = df.attrs.get("group")
    return f"{title} ({group})" if group else title


def _direction_word(df: Any) -> str:
    return "lower is better" if df.attrs.get("direction") == "minimize" else "higher is better"


def _curves(ax: Any, cells: Cells, replicated: bool) -> None:
    t = cells.table.reset_index()
    for b, part in t.groupby("bal_level"):
        part = part.sort_values("vol_level")
        yerr = np.vstack([part["mean"] - part["low"], part["high"] - part["mean"]])
        yerr = np.nan_to_num(yerr, nan=0.0)
        ax.errorbar(
            part["vol_level"],
            part["mean"],
            yerr=yerr if replicated else None,
            marker="o",
            capsize=3,
            label=f"{b:.2f}",
        )
    _volume_axis(ax, t["vol_level"].unique())
    ax.grid(True, alpha=0.3)


def _volume_axis(ax: Any, volumes: Any) -> None:
    """Log axis with a labelled tick at each tested volume (matplotlib's minor labels collide)."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    vols = sorted(float(v) for v in volumes)
    if len(vols) <= 8:
        ax.set_xticks(vols, [f"{v:,.0f}" for v in vols])
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_volume_balance(
    df: Any,
    out: Path,
    metric: str = "value",
    label: str | None = None,
    cells: Cells | None = None,
) -> Path:
    """Score against volume (log axis), one line per balance level, 95% t interval bars."""
    plt = load_pyplot()
    cells = cells or cell_stats(df, metric)
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
    ax.set_ylabel(f"{name} ({_direction_word(df)})")
    title = _titled(df, f"{name} against volume per balance level")
    ax.set_title(f"{title}\n{bars}", fontsize=9)
    ax.legend(title="balance (norm. entropy)", fontsize=8)
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
    ax.set_yticks(range(len(grid.columns)), [f"{b:.2f}" for b in grid.columns])
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
    ax.set_title(_titled(df, f"mean {name} over seeds, volume x balance"), fontsize=10)
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
        cells = cell_stats(df, m)
        replicated = cells.df >= 1
        _curves(ax, cells, replicated)
        ax.set_title(m[len(prefix) :], fontsize=9)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
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
    title = _titled(df, f"per-domain {prefix.rstrip('/')} against volume")
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
        panels.append((cost2, name2))
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
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"mean {name} over seeds")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if maximize else "upper right")
    fig.colorbar(sc, ax=axes[0, -1], label="balance")
    fig.suptitle(
        _titled(df, f"{name} against cost: mixtures on the front are not beaten by a cheaper one"),
        fontsize=10,
    )
    return _save(fig, out)


def plot_simplex(
    df: Any, out: Path, metric: str = "value", label: str | None = None
) -> Path | None:
    """3 task types: a ternary plot of the proportions coloured by score; more: parallel coordinates."""
    types = task_types(df)
    if len(types) < 2:
        return None
    plt = load_pyplot()
    mix = mixture_means(df, metric)
    name = _label(df, metric, label)
    cmap = "viridis_r" if df.attrs.get("direction") == "minimize" else "viridis"
    p = mix[[f"p/{t}" for t in types]].to_numpy(float)
    if len(types) == 2:
        fig = _share_scatter(plt, mix, p, types, name)
    elif len(types) == 3:
        title = _titled(df, f"{name} over the simplex of proportions")
        fig = _ternary(plt, mix, p, types, name, cmap, title)
    else:
        fig = _parallel_coordinates(plt, mix, p, types, name, cmap)
    return _save(fig, out)


def _share_scatter(plt: Any, mix: Any, p: np.ndarray, types: list[str], name: str) -> Any:
    """2 task types: the score against the share of the first, coloured by volume."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=DPI)
    sc = ax.scatter(p[:, 0], mix["score"], c=np.log10(mix["volume"].astype(float)), cmap="cividis")
    ax.set_xlabel(f"share of {types[0]} (rest: {types[1]})")
    ax.set_ylabel(f"mean {name} over seeds")
    fig.colorbar(sc, ax=ax, label="log10 volume (rows)")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{name} against the share of {types[0]}", fontsize=10)
    return fig


def _triangle(ax: Any, types: list[str]) -> None:
    """The simplex's outline with its corners named."""
    corners = np.array([[0, 0], [1, 0], [0.5, np.sqrt(3) / 2], [0, 0]])
    ax.plot(corners[:, 0], corners[:, 1], color="0.4", lw=1)
    for (cx, cy), t, ha in zip(corners[:3], types, ("right", "left", "center"), strict=True):
        ax.annotate(
            t, (cx, cy), xytext=(0, -12 if cy == 0 else 6), textcoords="offset points", ha=ha,
            fontsize=9,
        )  # fmt: skip
    ax.set_aspect("equal")
    ax.axis("off")


def _ternary(
    plt: Any, mix: Any, p: np.ndarray, types: list[str], name: str, cmap: str, title: str
) -> Any:
    """3 task types: the simplex as a triangle, a marker per mixture, one panel per volume level
    (a mixture tried at several volumes sits at one point: drawn in one panel, the largest
    volume's marker would hide the rest), one colour scale, each panel's best ringed in red."""
    # barycentric -> plane: corners (0,0), (1,0), (1/2, sqrt(3)/2)
    x = p[:, 1] + 0.5 * p[:, 2]
    y = (np.sqrt(3) / 2) * p[:, 2]
    score = mix["score"].to_numpy(float)
    better = -score if cmap.endswith("_r") else score
    levels = add_levels(mix)["vol_level"].to_numpy(float)
    binned = mix["volume"].nunique() > len(np.unique(levels))
    vols = np.unique(levels)
    ncol = 2 if len(vols) in (2, 4) else min(3, len(vols))
    nrow = -(-len(vols) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.9 * ncol + 1.2, 3.6 * nrow + 0.6), dpi=DPI, squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for ax, v in zip(axes.flat, vols, strict=False):
        _triangle(ax, types)
        on = np.flatnonzero(levels == v)
        on = on[np.argsort(better[on])]  # the best drawn last, on top
        sc = ax.scatter(
            x[on], y[on], c=score[on], s=36, cmap=cmap, vmin=score.min(), vmax=score.max(),
            edgecolors="k", linewidths=0.3,
        )  # fmt: skip
        ax.scatter(x[on[-1]], y[on[-1]], s=110, facecolors="none", edgecolors="r", lw=1.2)
        ax.set_title(
            f"{'about ' if binned else ''}{v:,.0f} rows: best {score[on[-1]]:.3f}",
            fontsize=9, pad=16,  # above the top corner's name
        )  # fmt: skip
    for ax in axes.flat[len(vols) :]:
        ax.set_visible(False)
    fig.colorbar(sc, ax=axes.ravel().tolist(), label=f"mean {name} over seeds", shrink=0.8)
    fig.suptitle(f"{title}\none panel per volume, the best of each ringed", fontsize=10)
    return fig


def _parallel_coordinates(
    plt: Any, mix: Any, p: np.ndarray, types: list[str], name: str, cmap: str
) -> Any:
    """4+ task types: one axis per share, log volume and score; each line one mixture."""
    from matplotlib.collections import LineCollection

    cols = [*(f"p/{t}" for t in types), "log10 volume", "score"]
    data = np.column_stack([p, np.log10(mix["volume"].astype(float)), mix["score"]])
    lo, hi = data.min(axis=0), data.max(axis=0)
    norm = (data - lo) / np.where(hi > lo, hi - lo, 1.0)
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2, 4.4), dpi=DPI)
    order = np.argsort(norm[:, -1])  # best drawn last, on top
    xs = np.arange(len(cols), dtype=float)
    lines = LineCollection(
        [np.column_stack([xs, row]) for row in norm[order]],
        colors=plt.get_cmap(cmap)(norm[order, -1]),
        alpha=0.7,
        linewidths=1,
    )
    ax.add_collection(lines)  # one artist for every mixture (a Line2D each drew 5x slower)
    ax.set_xlim(-0.05 * (len(cols) - 1), 1.05 * (len(cols) - 1))
    ax.set_ylim(-0.05, 1.05)
    ax.set_xticks(range(len(cols)), [c.removeprefix("p/") for c in cols], rotation=20)
    for i in range(len(cols)):
        ax.axvline(i, color="0.6", lw=0.8)
        ax.annotate(f"{hi[i]:.3g}", (i, 1.0), xytext=(2, 2), textcoords="offset points", fontsize=7)
        ax.annotate(
            f"{lo[i]:.3g}", (i, 0.0), xytext=(2, -9), textcoords="offset points", fontsize=7
        )
    ax.set_yticks([])
    ax.set_title(f"mixtures as lines (shares, volume, mean {name}); colour: {name}", fontsize=10)
    return fig


def plot_history(df: Any, out: Path, metric: str = "value", label: str | None = None) -> Path:
    """The objective of every completed trial in trial order, the best so far as a step line."""
    plt = load_pyplot()
    done = completed(df, metric).sort_values("trial")
    maximize = df.attrs.get("direction") != "minimize"
    best = done[metric].cummax() if maximize else done[metric].cummin()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=DPI)
    ax.scatter(done["trial"], done[metric], s=12, alpha=0.7, label="trial")
    ax.step(done["trial"], best, where="post", color="C3", label="best so far")
    failed = df[df["state"] == "FAIL"]
    if len(failed):
        for k, x in enumerate(failed["trial"]):
            ax.axvline(x, color="0.7", lw=0.6, ls=":", label="failed trial" if k == 0 else None)
    name = _label(df, metric, label)
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"{name} ({_direction_word(df)})")
    ax.set_title(_titled(df, f"optimisation history: {len(done)} completed trials"), fontsize=10)
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
