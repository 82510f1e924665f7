"""A trial <-> a mixture: the user attributes that define a trial, and back.

Every trial carries `proportions` (task type -> share, summing to 1), `volume`, `seed`, `balance`
(normalised entropy of the proportions), `design_key` (what makes two trials the same design
point), `mixture_name`, `taxonomy` and `settings_id` (what it was trained with: see
`ablate.study.settings`); a trial of a job with `models:` also carries `model` (the entry's
name; a one-model job's trials have none, as before); a finished one adds `metrics`, `seconds` and, when not
empty, `selection_hash` and `counts`, and when an LLM judge scored it, `judge` (model, host, url,
rubric version, settings: never the key).
"""

from __future__ import annotations

from typing import Any

from ablate.design import design_key
from ablate.mixture import Mixture, normalized_entropy
from ablate.result import TrialResult

#: User attributes that define a trial's parameters (copied when a trial is enqueued again).
DESIGN_ATTRS = (
    "proportions",
    "volume",
    "seed",
    "balance",
    "design_key",
    "mixture_name",
    "taxonomy",
    "settings_id",
    "settings_changes",
    "model",
    # a proposal's: without them its requeued copy read as a design trial (a balance level)
    "proposed_by",
    "predicted",
)
#: The study user attribute naming the judge of the latest sweep of a judged bench (model, host,
#: url, rubric version, settings: `ablate.bench.judge_http.judge_identity`); each judged trial
#: carries the one that scored it as `judge`.
STUDY_JUDGE = "ablate.judge"
#: Result attributes an enqueued trial starts with: set at enqueue time they cost no write when
#: the trial finishes with the same value (the driver sets only what differs).
RESULT_DEFAULTS: dict[str, Any] = {"retries": 0, "counts": {}, "selection_hash": ""}


def trial_attrs(mixture: Mixture) -> dict[str, Any]:
    """The user attributes that define a trial: its mixture, `balance` and `design_key`."""
    props = {t: float(p) for t, p in dict(mixture.proportions).items()}
    return {
        "proportions": props,
        "volume": int(mixture.volume)
        if float(mixture.volume).is_integer()
        else float(mixture.volume),
        "seed": int(mixture.seed),
        "balance": normalized_entropy(props),
        "design_key": design_key(mixture),
        "mixture_name": mixture.name,
        "taxonomy": mixture.taxonomy,
        **({"model": mixture.model} if mixture.model else {}),
        **{k: (dict(v) if isinstance(v, dict) else v) for k, v in RESULT_DEFAULTS.items()},
    }


def mixture_from_attrs(attrs: dict[str, Any], default_taxonomy: str = "task_type") -> Mixture:
    """Rebuild a trial's Mixture from its user attributes."""
    missing = [k for k in ("proportions", "volume", "seed") if k not in attrs]
    if missing:
        raise ValueError(
            f"trial has no user attribute(s) {missing}: not a trial enqueued by ablate"
        )
    return Mixture(
        name=str(attrs.get("mixture_name") or f"v{attrs['volume']}-s{attrs['seed']}"),
        volume=attrs["volume"],
        proportions={str(t): float(p) for t, p in attrs["proportions"].items()},
        taxonomy=str(attrs.get("taxonomy") or default_taxonomy),
        seed=int(attrs["seed"]),
        model=str(attrs.get("model") or ""),
    )


def result_from_attrs(attrs: dict[str, Any]) -> TrialResult:
    """What a finished trial recorded of its result (metrics, counts, selection hash, seconds,
    and the judge that scored it as `info["judge"]`)."""
    judge = attrs.get("judge")
    return TrialResult(
        metrics=dict(attrs.get("metrics") or {}),
        counts=dict(attrs.get("counts") or {}),
        selection_hash=str(attrs.get("selection_hash") or ""),
        seconds=float(attrs.get("seconds") or 0.0),
        info={"judge": dict(judge)} if isinstance(judge, dict) else {},
    )
