"""What a report says of a study across models, or of settings recorded as a factor: which
group the page shows, the verdict across the groups, every other group's verdict and its
score against volume curves, and the rank transfer between models (`ablate.analysis.groups`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.analysis.findings import Findings, analyse
from ablate.analysis.groups import rank_transfer, unshared_pairs
from ablate.analysis.page import TITLES
from ablate.analysis.plots import plot_all
from ablate.errors import UserError

__all__ = ["NO_RESULT", "across_verdict", "group_curves", "group_notes", "group_scope"]


def group_notes(
    df: Any, groups: list[tuple[str, Any]], shown: Findings, metric: str, alpha: float
) -> list[str]:
    """What the page says of a study across models or settings below the proposals: the
    verdict across the groups, every other group's own verdict (its headline names it), and
    the rank transfer between models. `shown`: the findings of the group the page shows."""
    if len(groups) < 2:
        return []
    notes: list[str] = []
    statuses: dict[str, str] = {}
    for name, part in groups:
        if name == shown.group:
            statuses[name] = shown.verdict
            continue
        try:
            findings = analyse(part, metric, alpha=alpha)
        except UserError as err:  # no completed trial: no verdict, listed as such
            notes.append(f"{name}: {err}")
            statuses[name] = NO_RESULT
            continue
        statuses[name] = findings.verdict
        notes.append(findings.headline())
    notes.insert(0, across_verdict(statuses, alpha))
    notes += [t.describe() for t in rank_transfer(df, metric)] + unshared_pairs(df, metric)
    return notes


#: The status of a group with no completed trial (no verdict).
NO_RESULT = "has no completed trial"


def across_verdict(statuses: dict[str, str], alpha: float) -> str:
    """The "less is more" verdict of every group in one line, and whether it survives the
    change of model (or settings): each group is its own test at `alpha`, so "holds for every
    one" keeps that level (each must hold), while with g groups and no effect anywhere one of
    them holds by chance in up to g x alpha of studies. A group with no completed trial has
    no verdict and is listed as such."""
    what = "models" if all(n.startswith("model ") for n in statuses) else "groups of trials"
    by_status: dict[str, list[str]] = {}
    for name, status in statuses.items():
        by_status.setdefault(status, []).append(name)
    told = "; ".join(
        f"{s.upper()} for {', '.join(names)}" if s != NO_RESULT else f"{', '.join(names)} {s}"
        for s, names in by_status.items()
    )
    n = len(statuses)
    change = what[:-1] if what == "models" else "settings"
    if set(by_status) == {"holds"}:
        close = f"it survives the change of {change}"
    elif "holds" in by_status and "does not hold" in by_status:
        close = f"the answer changes with the {change}"
    elif "holds" in by_status:
        close = (
            "whether it survives cannot be told until every one is decided (with "
            f"{n} {what} and no volume effect, one of them holds by chance in up to "
            f"{min(1.0, n * alpha):.0%} of studies)"
        )
    elif set(by_status) == {"does not hold"}:
        close = "the largest volume is best for every one"
    elif "does not hold" in by_status:
        close = "it holds for none of them so far; the undecided may still go either way"
    else:
        close = "none is decided yet"
    return f'Across the {n} {what}, "less is more" {told}: {close}.'


def group_scope(df: Any, groups: list[tuple[str, Any]], shown: str) -> list[str]:
    """The first thing the page says of a study across models or settings: how many, and which
    one the verdict, plots, proposals and surrogates are of."""
    if len(groups) < 2:
        return []
    models = df["model"].nunique() if "model" in df else 0
    what = f"{models} models" if models == len(groups) else f"{len(groups)} groups of trials"
    names = "; ".join(name for name, _ in groups)
    return [
        f"This study has {what} ({names}), never pooled as seed replicates of each other: the "
        f"verdict, plots, proposals and surrogates are of {shown}; every other's verdict and "
        "score against volume follow the surrogates."
    ]


def group_curves(
    groups: list[tuple[str, Any]], shown: str, out: Path, metric: str, label: str
) -> dict[str, Path]:
    """Score against volume for every group besides the one the main plots show (each model's
    curves, in a study across models), titled by group."""
    curves = {}
    for i, (name, part) in enumerate(groups):
        if name == shown:
            continue
        try:
            drawn = plot_all(part, out / f"group-{i}", metric, label, None, ("volume_balance",))
        except UserError:  # no completed trial in this group: its verdict line says so
            continue
        if "volume_balance" in drawn:
            curves[f"{TITLES['volume_balance']}: {name}"] = drawn["volume_balance"]
    return curves
