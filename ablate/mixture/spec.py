"""The mixture file: `Mixture` (proportions over one taxonomy + volume + seed), `Nested`
shares inside a stratum, loading and canonical proportions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ablate.config import build, check_colon_keys, read_yaml
from ablate.errors import UserError, did_you_mean

SUM_TOLERANCE = 1e-6
"""How far the shares of a mixture may sum from 1."""


@dataclass(frozen=True)
class Mixture:
    """A mixture spec, as in `mixtures/*.yaml`; a trial's parameters are one of these."""

    name: str = "mixture"
    volume: Any = 1000
    """An integer is a number of rows (`1000`; `1` = one row); a float in (0, 1] is a fraction
    of the pool (`0.25` = a quarter, `1.0` = the whole pool); a whole float above 1 (`5000.0`)
    is rows. YAML keeps `1` and `1.0` apart, and so does `--set volume=1.0`; typed `Any` so the
    loader keeps the number as written (an `int | float` hint would turn `1.0` into `1`), and
    `check_mixture` refuses anything but a positive int or float."""
    proportions: Any = "natural"
    """Task type -> share (summing to 1); or `natural`; or {natural: true, temperature: T}."""
    taxonomy: str = "task_type"
    """Which label column of the pool the proportions refer to."""
    max_repeat: int | dict[str, int] = 1
    """1 = no upsampling; 2 = a row may appear twice. A mapping caps per type (unlisted: 1)."""
    seed: int = 0
    """Seeds every draw (sha256-derived, so the same on every machine)."""
    min_share: float | dict[str, float] = 0.0
    """Floor on the resolved shares: a number for every type with a positive share, or a
    mapping per type. Shares below it are raised to it, the others scaled down in proportion."""
    within: dict[str, Nested] = field(default_factory=dict)
    """Per label of `taxonomy`, how its rows split over a second taxonomy (nested mixture),
    e.g. `{base: {taxonomy: task_type, proportions: natural}}`; unlisted labels: unstratified."""
    model: str = ""
    """The `models:` entry of the job a trial of this mixture trains (its `name`); empty: the
    job's one `model`. Set by the design, not in mixture files."""


@dataclass(frozen=True)
class Nested:
    """The split of one label's rows over a second taxonomy (a part of a nested mixture)."""

    taxonomy: str = "task_type"
    """The inner label column."""
    proportions: Any = "natural"
    """Inner label -> share (summing to 1), `natural` (the label's own rows), or
    {natural: true, temperature: T}."""


def is_fraction(volume: Any) -> bool:
    """Whether a (checked) volume is a fraction of the pool, a float in (0, 1], not rows."""
    return isinstance(volume, float) and volume <= 1


# --------------------------------------------------------------------------- loading, checking


def load_mixture(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Mixture:
    """Read a mixture YAML (with `--set key=value` overrides) and check it without a pool."""
    data = read_yaml(path, overrides)
    if not data:  # (an empty file was the natural mixture of 1,000 rows, silently)
        raise UserError(
            f"{path}: the mixture file is empty; give at least `proportions` (shares per task "
            "type, or `natural` for the pool's own) and `volume`"
        )
    return check_mixture(build(Mixture, data, path), source=str(path))


def check_mixture(mixture: Mixture, source: str = "mixture") -> Mixture:
    """Check the pool-independent rules; return the mixture with proportions in canonical form.

    Canonical proportions: a dict of float shares, `"natural"`, or
    `{"natural": True, "temperature": T}` (T != 1).
    """
    v = mixture.volume
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise UserError(f"{source}: `volume` must be a number, got {v!r}")
    if not math.isfinite(v) or v <= 0:
        raise UserError(
            f"{source}: `volume` must be a number of rows (an integer >= 1) or a fraction of "
            f"the pool (0 < volume <= 1.0, 1.0 = the whole pool), got {v!r}"
        )
    if v > 1 and not float(v).is_integer():
        raise UserError(
            f"{source}: `volume` {v} is neither a whole number of rows nor a fraction up to 1.0; "
            f"use {math.floor(v)} or a fraction such as 0.25"
        )
    _check_repeat_and_floors(mixture, source)
    within = _canonical_within(mixture, source)
    if not str(mixture.taxonomy).strip():
        raise UserError(
            f"{source}: `taxonomy` must name a label column of the pool, e.g. task_type"
        )
    return replace(
        mixture,
        proportions=canonical_proportions(mixture.proportions, source),
        within=within,
    )


def _check_repeat_and_floors(mixture: Mixture, source: str) -> None:
    caps = (
        mixture.max_repeat if isinstance(mixture.max_repeat, Mapping) else {"": mixture.max_repeat}
    )
    for key, cap in caps.items():
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            name = f"max_repeat.{key}" if key else "max_repeat"
            raise UserError(
                f"{source}: `{name}` must be an integer >= 1 (1 = no upsampling), got {cap!r}"
            )
    floors = (
        mixture.min_share if isinstance(mixture.min_share, Mapping) else {"": mixture.min_share}
    )
    for key, floor in floors.items():
        name = f"min_share.{key}" if key else "min_share"
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0 <= floor <= 1:
            raise UserError(f"{source}: `{name}` must be a share between 0 and 1, got {floor!r}")
    if (
        isinstance(mixture.min_share, Mapping)
        and sum(mixture.min_share.values()) > 1 + SUM_TOLERANCE
    ):
        raise UserError(
            f"{source}: `min_share` sums to {sum(mixture.min_share.values()):.4g}, more than 1; "
            "lower the floors"
        )


def with_within(mixture: Mixture, within: Mapping[str, Any], source: str) -> Mixture:
    """`mixture` with a job's `within:` (label -> {taxonomy, proportions} mappings) as its
    nested parts; the mixture itself when the job has none. A mixture with a `within` of its
    own and a job with one too is refused: which of them holds is nothing to guess."""
    if not within:
        return mixture
    if mixture.within:
        raise UserError(
            f"{source}: the mixture has a `within` of its own and the job gives `within` too; "
            "keep one of them"
        )
    nested = {
        str(label): build(Nested, spec, source, f"within.{label}.")
        for label, spec in within.items()
    }
    return check_mixture(replace(mixture, within=nested), source)


def _canonical_within(mixture: Mixture, source: str) -> dict[str, Nested]:
    within = {}
    for label, nested in mixture.within.items():
        if not isinstance(nested, Nested):
            raise UserError(
                f"{source}: `within.{label}` must be a mapping with taxonomy and proportions"
            )
        if nested.taxonomy == mixture.taxonomy:
            raise UserError(
                f"{source}: `within.{label}.taxonomy` is `{nested.taxonomy}`, the mixture's own "
                "taxonomy; name a second label column (e.g. task_type inside source)"
            )
        props = canonical_proportions(nested.proportions, f"{source}: `within.{label}`")
        within[label] = replace(nested, proportions=props)
    return within


def canonical_proportions(props: Any, source: str) -> Any:
    if props == "natural":
        return "natural"
    if isinstance(props, str):
        raise UserError(
            f"{source}: `proportions` must be a mapping of task type -> share, `natural`, or "
            f"{{natural: true, temperature: T}}; got {props!r}"
        )
    if not isinstance(props, Mapping) or not props:
        raise UserError(
            f"{source}: `proportions` must be a non-empty mapping of task type -> share, "
            f"`natural`, or {{natural: true, temperature: T}}; got {props!r}"
        )
    if "natural" in props:
        extra = sorted(set(map(str, props)) - {"natural", "temperature"})
        if extra:
            raise UserError(
                f"{source}: `proportions` mixes `natural` with {', '.join(extra)}"
                f"{did_you_mean(extra[0], ['temperature'])}; "
                "use either shares per task type or {natural: true, temperature: T}"
            )
        if props["natural"] is not True:
            raise UserError(
                f"{source}: `proportions.natural` must be true (or give shares per task type), "
                f"got {props['natural']!r}"
            )
        t = props.get("temperature", 1.0)
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 0:
            raise UserError(
                f"{source}: `proportions.temperature` must be a number > 0 "
                f"(1 = natural, < 1 flattens towards uniform), got {t!r}"
            )
        return "natural" if t == 1 else {"natural": True, "temperature": float(t)}
    check_colon_keys(dict(props), source, "proportions")  # `{a:0.5}`: the key `a:0.5`
    shares: dict[str, float] = {}
    for key, value in props.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise UserError(f"{source}: `proportions.{key}` must be a number, got {value!r}")
        if value < 0:
            raise UserError(
                f"{source}: `proportions.{key}` is negative ({value}); shares must be >= 0"
            )
        shares[str(key)] = float(value)
    total = sum(shares.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        if total <= 0:
            raise UserError(
                f"{source}: `proportions` are all zero; give at least one positive share"
            )
        normalised = ", ".join(f"{k}: {v / total:.4g}" for k, v in shares.items())
        raise UserError(
            f"{source}: `proportions` sum to {total:.6g}, not 1; normalised they would be "
            f"{{{normalised}}}"
        )
    return shares
