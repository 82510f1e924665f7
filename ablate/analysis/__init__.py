"""Answer the question a sweep was run for: read the study back, test, fit, plot, report.

    load(job)                    -> one row per trial (load)
    analyse(df)                  -> Findings: "less is more" and the balance effect by
                                    calibrated tests (findings; verdict: Dunnett-style bounds
                                    with the seed noise pooled over cells, contrasts), cells
                                    with 95% t intervals, pooled seed SD (stats; tables: one
                                    per mixture)
    fit_surrogates(df)           -> cross-validated surrogates, every one in SURROGATES
                                    (surrogates; surrogate_registry; surrogate_models/, one file
                                    per model)
    Surrogates.propose(...)      -> the best mixtures at a target volume, with intervals
    recommend.recommend(sur)     -> proposals in a trust region around the best tried
                                    mixtures, or the best tried one when none is expected to
                                    beat it
    plot_all(df, out_dir)        -> every plot as PNG (plots)
    report.write_report(job, out) -> report.html (page), PNGs, trials.csv; forked children
                                    (forked) draw and fit alongside
    propose.propose_and_enqueue  -> `ablate propose`: the best mixtures into the study

Heavy libraries (pandas, matplotlib, scikit-learn, scipy, optuna) are imported by the functions
that need them, through the submodules. `report` and `propose` (which import tracking and the
study) are not re-exported here: `from ablate.analysis import load` stays cheap.
"""

from __future__ import annotations

from ablate.analysis.findings import Findings, analyse, balance_effects, less_is_more
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
from ablate.analysis.replicates import t_interval
from ablate.analysis.stats import cell_stats
from ablate.analysis.surrogate_registry import SURROGATES, Model
from ablate.analysis.surrogates import CrossValidation, Proposal, Surrogates, fit_surrogates
from ablate.analysis.tables import MixtureEffect, mixture_effect, mixture_table
from ablate.analysis.verdict import (
    BalanceEffect,
    Comparison,
    Design,
    LessIsMore,
    balance_verdicts,
    study_design,
    volume_verdicts,
)

__all__ = [
    "SURROGATES",
    "BalanceEffect",
    "Comparison",
    "CrossValidation",
    "Design",
    "Findings",
    "LessIsMore",
    "MixtureEffect",
    "Model",
    "Proposal",
    "Surrogates",
    "analyse",
    "balance_effects",
    "balance_verdicts",
    "cell_stats",
    "completed",
    "fit_surrogates",
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
    "study_design",
    "t_interval",
    "task_types",
    "volume_verdicts",
]
