"""A study across models (or settings recorded as a factor): each group has its own verdict,
and models are compared by how they rank the mixtures they share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_analysis import TYPES, peak_at_5000

from ablate.analysis.across_groups import NO_RESULT, across_verdict
from ablate.analysis.groups import main_group, rank_transfer, split_groups
from ablate.analysis.load import result_trial
from ablate.analysis.report import write_report
from ablate.design import proportions_for_balance


def table(models: dict[str, Any], n_mix: int = 10, seeds: int = 3, noise: float = 0.01) -> Any:
    """Trials of `n_mix` mixtures x `seeds` per model; model m scores mixture i as f_m(i)."""
    rng = np.random.default_rng(0)
    rows, trial = [], 0
    for model, f in models.items():
        for i in range(n_mix):
            for s in range(seeds):
                rows.append({"trial": trial, "state": "COMPLETE", "model": model, "seed": s,
                             "value": f(i) + rng.normal(0, noise), "volume": 1000.0,
                             "p/a": i / n_mix, "p/b": 1 - i / n_mix})  # fmt: skip
                trial += 1
    df = pd.DataFrame(rows)
    df.attrs["direction"] = "maximize"
    return df


def test_rank_transfer_between_models_that_agree_and_disagree() -> None:
    df = table({"proxy": lambda i: i, "same": lambda i: 2 * i + 1, "reversed": lambda i: -i})
    pairs = {(t.a, t.b): t for t in rank_transfer(df)}
    assert set(pairs) == {("proxy", "same"), ("proxy", "reversed"), ("same", "reversed")}
    same, rev = pairs[("proxy", "same")], pairs[("proxy", "reversed")]
    assert same.rho == pytest.approx(1.0) and same.low > 0.9 and same.overlap == same.k == 3
    assert rev.rho == pytest.approx(-1.0) and rev.high < -0.9 and rev.overlap == 0
    assert same.n_mixtures == 10
    assert "Spearman 1.00" in same.describe() and "top-3 overlap 3/3" in same.describe()


def test_a_model_that_scores_every_mixture_the_same_has_no_ranking_to_transfer() -> None:
    """A broken or saturated model (accuracy 0 everywhere): rho is undefined, said so, no warning."""
    import warnings

    df = table({"proxy": lambda i: i, "broken": lambda i: 0.0}, noise=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's ConstantInputWarning would fail here
        (t,) = rank_transfer(df)
    assert t.tied == "broken"
    assert t.describe() == (
        "Rank transfer proxy -> broken: undefined, broken gives all 10 shared mixtures the same "
        "mean (nothing to rank)."
    )
    assert t.title() == "undefined: broken's means are all equal"


def test_noisy_seeds_widen_the_interval() -> None:
    quiet = rank_transfer(table({"a": lambda i: i, "b": lambda i: i}, noise=0.01))[0]
    noisy = rank_transfer(table({"a": lambda i: i, "b": lambda i: i}, noise=3.0))[0]
    assert noisy.high - noisy.low > quiet.high - quiet.low


def test_groups_by_model_and_settings_and_the_main_one_is_the_latest() -> None:
    df = table({"proxy": lambda i: i, "target": lambda i: i}, n_mix=3, seeds=1)
    df["settings"] = ["s1"] * 3 + ["s1"] * 2 + ["s2"]
    groups = split_groups(df)
    assert [g[0] for g in groups] == [
        "model proxy, settings s1",
        "model target, settings s1",
        "model target, settings s2",
    ]
    assert main_group(groups)[0] == "model target, settings s2"
    assert split_groups(df[df["model"] == "proxy"].drop(columns="settings"))[0][0] == ""
    # review j: a last model that failed every trial made the whole report refuse the study
    df.loc[df["settings"] == "s2", ["state", "value"]] = ["FAIL", np.nan]
    assert main_group(split_groups(df))[0] == "model target, settings s1"


def test_a_report_across_two_models_gives_each_its_verdict_and_the_transfer(
    make_job: Any, tmp_path: Path
) -> None:
    import optuna

    job = make_job(study="two-models")
    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction="maximize")
    rng = np.random.default_rng(0)
    for model, scale in (("proxy", 0.5), ("target", 1.0)):
        for v in (1000, 5000, 20000):
            for b in (0.5, 1.0):
                props = proportions_for_balance(TYPES, b)
                for s in (0, 1, 2):
                    value = scale * peak_at_5000(props, v, s) + rng.normal(0, 0.005)
                    t = result_trial(props, v, s, f"{model}-v{v}-b{b}-s{s}", value,
                                     {"score": value}, 1.0)  # fmt: skip
                    t.set_user_attr("model", model)
                    study.add_trial(t)
    report = write_report(job, tmp_path / "report", log_to_mlflow=False, parallel=False)
    notes = " ".join(report.notes)
    scope = " ".join(report.findings.scope)
    assert scope.startswith("This study has 2 models (model proxy; model target)")
    assert "the verdict, plots, proposals and surrogates are of model target" in scope
    assert 'Model proxy: "Less is more" HOLDS' in notes
    assert report.notes[0] == (
        'Across the 2 models, "less is more" HOLDS for model proxy, model target: it survives '
        "the change of model."
    )
    assert report.findings.verdict == "holds"
    assert report.findings.headline().startswith('Model target: "Less is more" HOLDS')
    page = report.html.read_text()
    assert "This study has 2 models" in page and "<b>Model target: &ldquo;Less is more" in page
    assert "Score against volume, one line per balance level (model target)" in page
    assert "Proposed mixtures (model target)" in page
    assert "Rank transfer proxy -> target: Spearman" in notes
    assert int(report.findings.cells.table["n"].sum()) == 18  # the target's trials only
    assert report.plots["rank_transfer"].is_file()  # proxy means against the target's
    curves = "Score against volume, one line per balance level: model proxy"
    assert report.plots[curves].is_file() and curves in report.html.read_text()
    assert "Rank transfer: one model" in report.html.read_text()


def test_a_model_that_ran_one_volume_of_several_is_not_told_to_add_volumes(
    make_job: Any, tmp_path: Path
) -> None:
    """Review j: a ladder's top rung ran only the promoted mixtures' volume; its verdict said
    "add smaller volumes to `design.volumes`", which already had them (tested on rung 0)."""
    import optuna

    job = make_job(study="rungs")
    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction="maximize")
    for model, volumes in (("proxy", (1000, 5000, 20000)), ("target", (5000,))):
        for v in volumes:
            for b in (0.5, 1.0):
                props = proportions_for_balance(TYPES, b)
                for s in (0, 1):
                    value = peak_at_5000(props, v, s)
                    t = result_trial(props, v, s, f"{model}-v{v}-b{b}-s{s}", value,
                                     {"score": value}, 1.0)  # fmt: skip
                    t.set_user_attr("model", model)
                    study.add_trial(t)
    report = write_report(job, tmp_path / "report", log_to_mlflow=False, parallel=False)
    reason = report.findings.overall.reason
    assert report.findings.group == "model target" and "add smaller volumes" not in reason
    assert "only one volume was tested on this model (5,000 rows), while the study ran" in reason


def test_the_verdict_across_models_says_whether_it_survives_the_change_of_model() -> None:
    """Each model is its own test at alpha: "survives" needs every one to hold; one holding
    among undecided ones is no answer yet (by chance, up to g x alpha of null studies)."""
    both = across_verdict({"model small": "holds", "model big": "holds"}, 0.05)
    assert both.endswith("HOLDS for model small, model big: it survives the change of model.")
    split = across_verdict({"model small": "holds", "model big": "does not hold"}, 0.05)
    assert split == (
        'Across the 2 models, "less is more" HOLDS for model small; DOES NOT HOLD for model big: '
        "the answer changes with the model."
    )
    open_ = across_verdict(
        {"model a": "holds", "model b": "cannot be decided", "model c": "holds"}, 0.05
    )
    assert "HOLDS for model a, model c; CANNOT BE DECIDED for model b" in open_
    assert "cannot be told until every one is decided" in open_ and "up to 15% of" in open_
    assert across_verdict({"model a": "does not hold", "model b": "does not hold"}, 0.05).endswith(
        "the largest volume is best for every one."
    )
    # review n: a model with no completed trial was left out ("Across the 1 models ... it
    # survives"); all undecided read "it holds for none of them"
    failed = across_verdict({"model small": "holds", "model big": NO_RESULT}, 0.05)
    assert failed.startswith('Across the 2 models, "less is more" HOLDS for model small; model ')
    assert "model big has no completed trial: whether it survives cannot be told" in failed
    undecided = {"model a": "cannot be decided", "model b": "cannot be decided"}
    assert across_verdict(undecided, 0.05).endswith(": none is decided yet.")
    mixed = across_verdict({"model a": "does not hold", "model b": "cannot be decided"}, 0.05)
    assert mixed.endswith(
        "it holds for none of them so far; the undecided may still go either way."
    )
    settings = across_verdict({"settings s1": "cannot be decided", "settings s2": "holds"}, 0.05)
    assert settings.startswith('Across the 2 groups of trials, "less is more" CANNOT BE DECIDED')


def test_model_pairs_without_enough_shared_mixtures_are_named() -> None:
    """Review o: a ladder's proxy and target share only the few promoted mixtures; the pair was
    left out of the page without a word."""
    from ablate.analysis.groups import unshared_pairs

    df = table({"proxy": lambda i: i, "mid": lambda i: i}, n_mix=10)
    target = table({"target": lambda i: i}, n_mix=2)  # 2 shared mixtures with each
    target["trial"] += 1000
    both = pd.concat([df, target], ignore_index=True)
    both.attrs["direction"] = "maximize"
    assert [(t.a, t.b) for t in rank_transfer(both)] == [("proxy", "mid")]
    assert unshared_pairs(both) == [
        f"No rank transfer {a} -> target: they share fewer than 3 mixtures (same shares and "
        "volume, 2 or more at a volume) to rank"
        for a in ("proxy", "mid")
    ]
