"""What each task type's share does: the surrogate's prediction along a path that moves one
type's share from 0 to 1, starting from the recommended mixture with the other types scaled in
proportion, at that mixture's volume, with a 95% bootstrap band; one panel per task type (one
in all with 2 types: the second's share is 1 minus the first's).

A one-at-a-time view around the mixture a researcher would run next: it answers "what if I add
more of X", which the simplex and parallel-coordinate plots (one marker per tried mixture) leave
to the eye. Shares outside the tried range of a type are shaded: the curve there is the model's
extrapolation, not data."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ablate.analysis.plot_base import DPI, load_pyplot, save
from ablate.analysis.recommend import Recommendation
from ablate.analysis.surrogates import Data, Proposal, Surrogates, single_thread_blas

#: Points along each type's path (share 0 to 1).
GRID = 41
#: Bootstrap refits for the band (the recommendation's interval uses 100; the band is a guide).
N_BOOT = 40
#: Tried mixtures drawn as points: those within this many standard deviations of ln(volume) of
#: the anchor's volume (the curve is at that volume; a mixture at 4x the rows scores otherwise).
NEAR_Z = 0.25


def effect_paths(anchor: np.ndarray, n: int = GRID) -> np.ndarray:
    """Shape (k, n, k): for each type t, n mixtures with t's share from 0 to 1 and the others
    keeping their ratios in `anchor` (equal shares when t held everything)."""
    k = len(anchor)
    share = np.linspace(0.0, 1.0, n)
    paths = np.empty((k, n, k))
    for t in range(k):
        others = np.arange(k) != t
        rest = anchor[others]
        rest = rest / rest.sum() if rest.sum() > 0 else np.full(k - 1, 1.0 / (k - 1))
        paths[t][:, t] = share
        paths[t][:, others] = (1.0 - share)[:, None] * rest[None, :]
    return paths


@dataclass
class EffectCurves:
    """The surrogate's prediction along each type's path (`effect_paths`) from `anchor`."""

    types: list[str]
    share: np.ndarray
    """The moved type's share along each path (GRID points, 0 to 1)."""
    mid: np.ndarray
    """(types, GRID): the prediction, kept inside the metric's range."""
    low: np.ndarray
    high: np.ndarray
    """(types, GRID): the 95% bootstrap band (whole mixtures resampled)."""
    anchor: Proposal
    recommended: bool
    """The anchor is a proposal expected to beat the best tried mixture (else it is the latter)."""


def effect_curves(sur: Surrogates, rec: Recommendation, seed: int = 0) -> EffectCurves:
    """Each type's curve around `rec.recommended`, with its band (see the module docstring)."""
    d = sur.data
    k = len(d.types)
    anchor = rec.recommended
    start = np.array([anchor.proportions[t] for t in d.types], float)
    flat = effect_paths(start).reshape(-1, k)
    z = np.full(len(flat), d.z_of(anchor.volume))
    with single_thread_blas():
        mid = d.clip(sur.model().predict(flat, z)).reshape(k, GRID)
        boots, _ = sur.bootstrap(flat, z, sur.best, N_BOOT, np.random.default_rng(seed))
    low, high = (b.reshape(k, GRID) for b in np.nanpercentile(boots, [2.5, 97.5], axis=0))
    share = np.linspace(0.0, 1.0, GRID)
    return EffectCurves(list(d.types), share, mid, low, high, anchor, bool(rec.beats))


def plot_effects(sur: Surrogates, rec: Recommendation, out: Path, name: str) -> Path | None:
    """`effects.png`: a panel per task type (`effect_curves`); None with fewer than 2 types."""
    if len(sur.data.types) < 2:
        return None
    return save(_panels(sur, effect_curves(sur, rec), name), out)


def _panels(sur: Surrogates, c: EffectCurves, name: str) -> Any:
    """One panel per type; with 2 types one panel (the second type's share is 1 minus the
    first's, so its panel would only mirror it)."""
    plt = load_pyplot()
    d = sur.data
    k = len(d.types)
    shown = 1 if k == 2 else k
    ncol = 3 if shown in (5, 6) else min(shown, 4)  # 5 types: 3 + 2, not 4 + a lone panel
    nrow = -(-shown // ncol)
    width = 3.3 * ncol + 0.6 if shown > 1 else 5.2
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(width, 2.9 * nrow + 1.2), dpi=DPI, squeeze=False, sharey=True,
        layout="constrained",
    )  # fmt: skip
    for t, ax in enumerate(axes.flat[:shown]):
        _panel(ax, d, c, t)
    if k == 2:
        axes[0, 0].set_xlabel(f"share of {d.types[0]} ({d.types[1]}: 1 minus it)", fontsize=8)
    better = "lower is better" if d.sign < 0 else "higher is better"
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{name} ({better})")
    for ax in axes.flat[shown:]:
        ax.set_visible(False)
    which = "recommended" if c.recommended else "best tried"
    moved = f"{d.types[0]}'s share" if k == 2 else "one task type's share"
    keep = "" if k == 2 else "; the others keep their ratios"
    title = (
        f"{name} as {moved} moves from the {which} mixture (dashed line and dot{keep}), at "
        f"{c.anchor.volume:,.0f} rows. {sur.best} surrogate, 95% "
        "bootstrap band; points: trials near that volume; shaded: beyond the tried shares"
    )
    fig.suptitle(textwrap.fill(title, int(width * 14)), fontsize=9)
    return fig


def _panel(ax: Any, d: Data, c: EffectCurves, t: int) -> None:
    """Type t's curve, band, nearby trials, tried range and the anchor (a line and a dot on
    the curve: at share 0 or 1 the line lies on the frame)."""
    share = c.share
    start = float(c.anchor.proportions[d.types[t]])
    near = np.abs(d.z - d.z_of(c.anchor.volume)) <= NEAR_Z
    tried = d.p[:, t]
    ax.axvspan(0.0, tried.min(), color="0.9", lw=0)  # outside the tried shares
    ax.axvspan(tried.max(), 1.0, color="0.9", lw=0)
    ax.fill_between(share, c.low[t], c.high[t], color="C0", alpha=0.25, lw=0)
    ax.plot(share, c.mid[t], color="C0", lw=1.6)
    ax.scatter(tried[near], d.y[near], s=9, color="0.35", alpha=0.6, zorder=3)
    ax.axvline(start, color="C3", ls="--", lw=1)
    ax.plot([start], [np.interp(start, share, c.mid[t])], "o", color="C3", ms=6,
            clip_on=False, zorder=4)  # fmt: skip
    ax.set_title(f"{d.types[t]} (now {start:.2f})", fontsize=9)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("share", fontsize=8)
    ax.grid(True, alpha=0.3)


__all__ = ["EffectCurves", "effect_curves", "effect_paths", "plot_effects"]
