"""What every plot of a study shares: pyplot without a display, saving, labels and the log
volume axis with a labelled tick at each tried volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DPI = 110


def load_pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:  # (a constrained layout lays itself out)
        fig.tight_layout()
    fig.savefig(out)
    load_pyplot().close(fig)
    return out


def label(df: Any, metric: str, given: str | None) -> str:
    """The metric's name on the axes: `given`, else the study's metric (`value` is Optuna's)."""
    if given:
        return given
    return str(df.attrs.get("metric", "score")) if metric == "value" else metric


def titled(df: Any, title: str) -> str:
    """`title`, naming the model (or settings) plotted in a study of several."""
    group = df.attrs.get("group")
    return f"{title} ({group})" if group else title


def direction_word(df: Any) -> str:
    return "lower is better" if df.attrs.get("direction") == "minimize" else "higher is better"


def volume_axis(ax: Any, volumes: Any, axis: str = "x") -> None:
    """Log axis with a labelled tick at each tested volume (matplotlib's minor labels collide)."""
    from matplotlib.ticker import NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    vols = sorted({float(v) for v in volumes})
    if len(vols) > 8 and vols[0] > 0:  # a search's volumes: 5 ticks across them
        vols = [float(f"{v:.2g}") for v in np.geomspace(vols[0], vols[-1], 5)]
    getattr(ax, f"set_{axis}ticks")(vols, [f"{v:,.0f}" if v >= 1 else f"{v:g}" for v in vols])
    getattr(ax, f"{axis}axis").set_minor_formatter(NullFormatter())


__all__ = ["DPI", "direction_word", "label", "load_pyplot", "save", "titled", "volume_axis"]
