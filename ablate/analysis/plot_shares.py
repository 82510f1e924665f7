"""The mixtures' shares, coloured by score: a scatter (2 task types), a ternary plot (3) or
parallel coordinates (4 or more)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ablate.analysis.load import task_types
from ablate.analysis.plot_base import DPI, label, load_pyplot, save, titled
from ablate.analysis.stats import add_levels
from ablate.analysis.tables import mixture_means

#: Light iso-share lines drawn across each ternary panel.
ISO_SHARES = (0.25, 0.5, 0.75)


def plot_simplex(
    df: Any, out: Path, metric: str = "value", given: str | None = None
) -> Path | None:
    """3 task types: a ternary plot of the proportions coloured by score; more: parallel coordinates."""
    types = task_types(df)
    if len(types) < 2:
        return None
    plt = load_pyplot()
    mix = mixture_means(df, metric)
    name = label(df, metric, given)
    cmap = "viridis_r" if df.attrs.get("direction") == "minimize" else "viridis"
    p = mix[[f"p/{t}" for t in types]].to_numpy(float)
    if len(types) == 2:
        fig = _share_scatter(plt, mix, p, types, name)
    elif len(types) == 3:
        title = titled(df, f"{name} over the simplex of proportions")
        fig = _ternary(plt, mix, p, types, name, cmap, title)
    else:
        fig = _parallel_coordinates(plt, mix, p, types, name, cmap)
    return save(fig, out)


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


def _plane(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric shares -> the plane: corners (0,0), (1,0), (1/2, sqrt(3)/2)."""
    p = np.atleast_2d(p)
    return p[:, 1] + 0.5 * p[:, 2], (np.sqrt(3) / 2) * p[:, 2]


def _triangle(ax: Any, types: list[str]) -> None:
    """The simplex's outline, light lines where a share is 0.25, 0.5 or 0.75, and the corners
    named inside the triangle's width (so neighbouring panels' names cannot run together)."""
    corners = np.array([[0, 0], [1, 0], [0.5, np.sqrt(3) / 2], [0, 0]])
    ax.plot(corners[:, 0], corners[:, 1], color="0.4", lw=1)
    for k in range(3):
        i, j = [m for m in range(3) if m != k]
        for c in ISO_SHARES:
            ends = np.zeros((2, 3))
            ends[:, k] = c
            ends[0, i] = ends[1, j] = 1 - c
            ax.plot(*_plane(ends), color="0.85", lw=0.6, zorder=0)
    place = (((0, -12), "left"), ((0, -12), "right"), ((0, 6), "center"))
    for (cx, cy), t, (offset, ha) in zip(corners[:3], types, place, strict=True):
        ax.annotate(t, (cx, cy), xytext=offset, textcoords="offset points", ha=ha, fontsize=8)
    ax.set_aspect("equal")
    ax.axis("off")


def _ternary(
    plt: Any, mix: Any, p: np.ndarray, types: list[str], name: str, cmap: str, title: str
) -> Any:
    """3 task types: the simplex as a triangle, a marker per mixture, one panel per volume level
    (a mixture tried at several volumes sits at one point: drawn in one panel, the largest
    volume's marker would hide the rest), one colour scale, each panel's best ringed in red."""
    x, y = _plane(p)
    score = mix["score"].to_numpy(float)
    better = -score if cmap.endswith("_r") else score
    levels = add_levels(mix)["vol_level"].to_numpy(float)
    binned = mix["volume"].nunique() > len(np.unique(levels))
    vols = np.unique(levels)
    ncol = 2 if len(vols) in (2, 4) else min(3, len(vols))
    nrow = -(-len(vols) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(4.2 * ncol + 1.2, 3.7 * nrow + 0.8), dpi=DPI, squeeze=False,
        layout="constrained",
    )  # fmt: skip
    fig.get_layout_engine().set(wspace=0.08, hspace=0.08)
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
    fig.suptitle(
        f"{title}\none panel per volume, the best of each ringed; light lines: a share of "
        "0.25, 0.5, 0.75",
        fontsize=10,
    )
    return fig


def _parallel_coordinates(
    plt: Any, mix: Any, p: np.ndarray, types: list[str], name: str, cmap: str
) -> Any:
    """4+ task types: one axis per share (all on one scale), volume (log, in rows) and the
    score; each line one mixture, coloured by its score (the colour bar)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    top = min(1.0, np.ceil(p.max() * 10) / 10) or 1.0  # one scale for every share
    volume = mix["volume"].to_numpy(float)
    lv, score = np.log10(volume), mix["score"].to_numpy(float)
    span = lambda a: (a - a.min()) / (np.ptp(a) or 1.0)  # noqa: E731
    norm = np.column_stack([p / top, span(lv), span(score)])
    k = norm.shape[1]
    fig, ax = plt.subplots(figsize=(1.3 * k + 3, 4.6), dpi=DPI)
    order = np.argsort(score if not cmap.endswith("_r") else -score)  # best drawn last
    colour = Normalize(score.min(), score.max())
    lines = LineCollection(
        [np.column_stack([np.arange(k), row]) for row in norm[order]],
        colors=plt.get_cmap(cmap)(colour(score[order])), alpha=0.7, linewidths=1,
    )  # fmt: skip
    ax.add_collection(lines)  # one artist for every mixture (a Line2D each drew 5x slower)
    ax.set_xlim(-0.3, k - 0.7)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xticks(range(k), [*types, "volume (rows)", name], rotation=20)
    for i in range(k):
        ax.axvline(i, color="0.6", lw=0.8)
    shares = np.linspace(0, top, 5)
    ax.set_yticks(shares / top, [f"{s:.2g}" for s in shares])
    ax.set_ylabel(f"share (one scale for every task type, 0 to {top:g})")
    ax.grid(True, axis="y", alpha=0.3)
    tried = np.unique(volume)
    ticks = tried if len(tried) <= 6 else np.geomspace(tried.min(), tried.max(), 4)
    for v in ticks:
        ax.annotate(f"{v:,.0f}", (k - 2, span(np.r_[lv, np.log10(v)])[-1]), xytext=(3, -3),
                    textcoords="offset points", fontsize=7)  # fmt: skip
    for s in np.linspace(score.min(), score.max(), 3):
        ax.annotate(f"{s:.3f}", (k - 1, span(np.r_[score, s])[-1]), xytext=(3, -3),
                    textcoords="offset points", fontsize=7)  # fmt: skip
    fig.colorbar(ScalarMappable(colour, cmap), ax=ax, label=f"mean {name} over seeds")
    ax.set_title(f"mixtures as lines: shares, volume and mean {name}", fontsize=10)
    return fig


__all__ = ["ISO_SHARES", "plot_simplex"]
