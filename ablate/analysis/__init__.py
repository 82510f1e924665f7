"""Answer the question a sweep was run for: read the study back, test, fit, plot, report.

    load(job)                 -> one row per trial (ablate.analysis.load)
    analyse(df)               -> Findings: bootstrap intervals, "less is more", balance effect
    fit_surrogates(df)        -> cross-validated surrogates (log-linear, mixing law, GP)
    propose_mixtures(...)     -> the best mixtures at a target volume, with intervals
    plot_all(df, out_dir)     -> every plot as PNG
    write_report(job, out)    -> report.html (self-contained), PNGs, trials.csv

Heavy libraries (pandas, matplotlib, scikit-learn, scipy, optuna) are imported by the functions
that need them, through the submodules.
"""

from __future__ import annotations

from ablate.analysis.load import completed, load, task_types
from ablate.analysis.plots import (
    plot_all,
    plot_domains,
    plot_heatmap,
    plot_history,
    plot_pareto,
    plot_simplex,
    plot_volume_balance,
)
from ablate.analysis.stats import (
    BalanceEffect,
    Findings,
    LessIsMore,
    analyse,
    balance_effects,
    bootstrap_mean_ci,
    cell_stats,
    less_is_more,
)
from ablate.analysis.tables import MixtureEffect, mixture_effect, mixture_table

__all__ = [
    "BalanceEffect",
    "Findings",
    "LessIsMore",
    "MixtureEffect",
    "analyse",
    "balance_effects",
    "bootstrap_mean_ci",
    "cell_stats",
    "completed",
    "less_is_more",
    "load",
    "mixture_effect",
    "mixture_table",
    "plot_all",
    "plot_domains",
    "plot_heatmap",
    "plot_history",
    "plot_pareto",
    "plot_simplex",
    "plot_volume_balance",
    "task_types",
]
