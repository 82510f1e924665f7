"""From a mixture to rows per task type (and per stratum): resolved proportions, rounding to rows
(`apportion`: exact totals, within quota, monotone in the volume), `max_repeat` caps, and
`validate`, which fails before any compute with what would fix it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ablate.errors import UserError, did_you_mean
from ablate.mixture.apportion import counts_at, largest_fitting
from ablate.mixture.spec import (
    SUM_TOLERANCE,
    Mixture,
    Nested,
    canonical_proportions,
    check_mixture,
    is_fraction,
)
from ablate.pool import PoolManifest


def volume_rows(mixture: Mixture, manifest: PoolManifest) -> int:
    """The mixture's volume in rows: a float in (0, 1] is a fraction of the whole pool, rounded
    (1.0 = every row); an integer (or a whole float above 1) is rows."""
    v = mixture.volume
    return round(v * manifest.rows) if is_fraction(v) else int(v)


def _type_counts(mixture: Mixture, manifest: PoolManifest, source: str) -> dict[str, int]:
    counts = manifest.labels.get(mixture.taxonomy)
    if counts is None:
        hint = did_you_mean(mixture.taxonomy, manifest.labels)
        raise UserError(
            f"{source}: `taxonomy` {mixture.taxonomy!r} is not a label column of the pool{hint}; "
            f"available: {', '.join(manifest.labels)}"
        )
    return counts


def _natural_shares(props: Any, counts: Mapping[str, int]) -> dict[str, float]:
    """The given shares, or p_i ∝ n_i^T over the labels present (natural: T = 1)."""
    if isinstance(props, dict) and "natural" not in props:
        return dict(props)
    present = {k: n for k, n in counts.items() if n > 0}
    t = props["temperature"] if isinstance(props, dict) else 1.0
    weights = {k: float(n) ** t for k, n in present.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def apply_min_share(
    proportions: Mapping[str, float], min_share: float | Mapping[str, float]
) -> dict[str, float]:
    """Raise shares below their floor to it and scale the others down in proportion.

    A number floors every type with a positive share; a mapping floors the types it names
    (adding them when absent). Water-filling: a type scaled below its floor is fixed at it and
    the rest is rescaled again, so the result sums to 1 and no share ends below its floor.
    """
    if isinstance(min_share, Mapping):
        floors = {t: float(f) for t, f in min_share.items() if f > 0}
    else:
        floors = {t: float(min_share) for t, p in proportions.items() if p > 0 and min_share > 0}
    if not floors:
        return dict(proportions)
    p = {t: float(v) for t, v in proportions.items()}
    for t in floors:
        p.setdefault(t, 0.0)
    fixed: dict[str, float] = {}
    while True:
        mass = 1.0 - sum(fixed.values())
        total = sum(v for t, v in p.items() if t not in fixed)
        low = {
            t: floors[t]
            for t, v in p.items()
            if t not in fixed and t in floors and (total <= 0 or v * mass / total < floors[t])
        }
        if not low:
            break
        fixed |= low
    out = {
        t: fixed[t] if t in fixed else (v * mass / total if total > 0 else 0.0)
        for t, v in p.items()
    }
    norm = sum(out.values())
    return {t: v / norm for t, v in out.items()}


def resolve_proportions(
    mixture: Mixture, manifest: PoolManifest, source: str = "mixture"
) -> dict[str, float]:
    """Shares per type: the given ones, or the pool's own (natural), or p_i ∝ n_i^T
    (temperature); then floored by `min_share` (`source`: the file messages name)."""
    props = canonical_proportions(mixture.proportions, source)
    if isinstance(props, dict) and "natural" not in props:
        shares = dict(props)
    else:
        shares = _natural_shares(props, _type_counts(mixture, manifest, source))
    floor = mixture.min_share
    n = sum(1 for v in shares.values() if v > 0)
    if not isinstance(floor, Mapping) and floor * n > 1 + SUM_TOLERANCE:
        raise UserError(  # (water-filling then gave every type 1/n, under the floor asked for)
            f"{source}: `min_share` {floor:g} for each of its {n} types with a share needs "
            f"{floor * n:.4g} of the volume, more than all of it; lower it to at most {1 / n:.4g}"
        )
    return apply_min_share(shares, floor)


def rows_per_type(proportions: Mapping[str, float], volume: int) -> dict[str, int]:
    """Integer rows per type summing exactly to `volume`, each the floor or the ceiling of its
    exact share, and never fewer at a larger volume (`apportion`: so volumes nest).

    Only types with a positive share get rows; the result lists every type, sorted by name.
    """
    if volume < 0:
        raise ValueError(f"volume must be >= 0, got {volume}")
    positive = sorted(k for k, p in proportions.items() if p > 0)
    if not positive:
        raise ValueError("rows_per_type needs at least one positive share")
    # Normalised inside `counts_at`: the sum is exact even when the shares sum to 1 only within 1e-6.
    rows = dict(
        zip(positive, counts_at(tuple(proportions[k] for k in positive), volume), strict=True)
    )
    return {k: rows.get(k, 0) for k in sorted(proportions)}


def repeat_cap(mixture: Mixture, label: str) -> int:
    """How many times a row of `label` may appear (`max_repeat`, per type or for all)."""
    if isinstance(mixture.max_repeat, Mapping):
        return int(mixture.max_repeat.get(label, 1))
    return int(mixture.max_repeat)


@dataclass(frozen=True)
class Cell:
    """One stratum of a mixture's plan: rows of `label` (and of `inner` in a nested mixture)."""

    label: str
    """Label of the mixture's taxonomy."""
    inner: str | None
    """Label of `within[label].taxonomy`, or None for an unstratified label."""
    rows: int
    """Rows to draw (copies included)."""
    available: int
    """Distinct pool rows in this stratum."""
    max_repeat: int

    @property
    def key(self) -> str:
        return self.label if self.inner is None else f"{self.label}/{self.inner}"


def _inner_counts(
    mixture: Mixture, manifest: PoolManifest, label: str, nested: Nested, source: str
) -> dict[str, int]:
    if nested.taxonomy not in manifest.labels:
        raise UserError(
            f"{source}: `within.{label}.taxonomy` {nested.taxonomy!r} is not a label column of "
            f"the pool{did_you_mean(nested.taxonomy, manifest.labels)}; available: "
            f"{', '.join(manifest.labels)}"
        )
    joint = manifest.joint.get(mixture.taxonomy, {}).get(nested.taxonomy)
    if joint is None:
        raise UserError(
            f"{source}: `within` needs the pool's joint label counts, which its manifest lacks "
            "(an older import, or too many distinct label combinations); re-import the pool "
            "with `ablate data import`"
        )
    return dict(joint.get(label, {}))


def _checked_shares(
    mixture: Mixture, manifest: PoolManifest, source: str
) -> tuple[dict[str, int], dict[str, float], int]:
    """The pool's rows per label, the resolved shares and the volume in rows of a checked
    mixture; UserError for a label the pool lacks or a volume of 0 rows."""
    counts = _type_counts(mixture, manifest, source)
    have = ", ".join(f"{k} ({n:,})" for k, n in counts.items())
    _check_type_keys(mixture, counts, have, source)
    props = resolve_proportions(mixture, manifest, source)
    for t, p in props.items():
        if p > 0 and counts.get(t, 0) == 0:
            floored = isinstance(mixture.min_share, Mapping) and t in mixture.min_share
            key = "min_share" if floored and t not in _given(mixture.proportions) else "proportions"
            raise UserError(
                f"{source}: `{key}.{t}` is {p:g} but the pool has no `{t}` rows in "
                f"`{mixture.taxonomy}`; the pool has: {have}"
            )
    unknown = sorted(set(mixture.within) - set(counts))
    if unknown:
        raise UserError(
            f"{source}: `within.{unknown[0]}`: the pool's `{mixture.taxonomy}` has no label "
            f"{unknown[0]!r}{did_you_mean(unknown[0], counts)}; it has: {have}"
        )
    volume = volume_rows(mixture, manifest)
    if volume < 1:
        raise UserError(
            f"{source}: `volume` {mixture.volume} of a {manifest.rows:,}-row pool is 0 rows; "
            "raise it"
        )
    return counts, props, volume


def plan(mixture: Mixture, manifest: PoolManifest, source: str = "mixture") -> list[Cell]:
    """The rows per stratum the mixture draws; raises UserError for a label the pool lacks.

    Capacity (rows vs available x max_repeat) is checked by `validate`, not here.
    """
    mixture = check_mixture(mixture, source)
    counts, props, volume = _checked_shares(mixture, manifest, source)
    cells = []
    for label, n in rows_per_type(props, volume).items():
        cap = repeat_cap(mixture, label)
        nested = mixture.within.get(label)
        if nested is None:
            cells.append(Cell(label, None, n, counts.get(label, 0), cap))
            continue
        inner = _inner_counts(mixture, manifest, label, nested, source)
        inner_props = _natural_shares(nested.proportions, inner)
        for t, p in inner_props.items():
            if p > 0 and inner.get(t, 0) == 0:
                rows_have = ", ".join(f"{k} ({v:,})" for k, v in inner.items())
                raise UserError(
                    f"{source}: `within.{label}.proportions.{t}` is {p:g} but the pool has no "
                    f"`{t}` rows in `{nested.taxonomy}` among its `{label}` rows"
                    f"{did_you_mean(t, inner)}; they have: {rows_have}"
                )
        for t, m in rows_per_type(inner_props, n).items():
            cells.append(Cell(label, t, m, inner.get(t, 0), cap))
    return cells


def _check_type_keys(mixture: Mixture, counts: Mapping[str, int], have: str, source: str) -> None:
    """Every type a mapping names (`proportions`, `max_repeat`, `min_share`) must be a label of
    the pool's taxonomy, even at share 0: a misspelt key would otherwise count as a type of its
    own (in balance) or be silently ignored (a cap or a floor meant for another type)."""
    mappings = {
        "proportions": sorted(_given(mixture.proportions)),
        "max_repeat": list(mixture.max_repeat) if isinstance(mixture.max_repeat, Mapping) else [],
        "min_share": list(mixture.min_share) if isinstance(mixture.min_share, Mapping) else [],
    }
    for key, types in mappings.items():
        for t in types:
            if t not in counts:
                raise UserError(
                    f"{source}: `{key}.{t}`: the pool's `{mixture.taxonomy}` has no label "
                    f"`{t}`{did_you_mean(t, counts)}; it has: {have}"
                )


def _given(props: Any) -> set[str]:
    return set(props) if isinstance(props, dict) and "natural" not in props else set()


def validate(mixture: Mixture, manifest: PoolManifest, source: str = "mixture") -> None:
    """Fail before any compute is spent if the pool cannot supply the mixture."""
    mixture = check_mixture(mixture, source)
    cells = beyond_the_pool(mixture, manifest, source) or plan(mixture, manifest, source)
    for cell in cells:
        if cell.rows <= cell.available * cell.max_repeat:
            continue
        best = _max_volume_of(mixture, manifest)
        repeat = math.ceil(cell.rows / cell.available)
        if isinstance(mixture.max_repeat, Mapping):
            raise_to = f"raise `max_repeat.{cell.label}` to {repeat}"
        else:
            repeat = max(math.ceil(c.rows / c.available) for c in cells if c.rows)
            raise_to = f"raise `max_repeat` to {repeat}"
        what = cell.label
        if cell.inner is not None:
            nested = mixture.within[cell.label]
            what = f"{cell.label} / {cell.inner} (`{nested.taxonomy}` {cell.inner} within {cell.label})"
        change = "`proportions`" + (
            f" or `within.{cell.label}.proportions`" if cell.inner is not None else ""
        )
        raise UserError(
            f"{source}: `volume` needs {cell.rows:,} rows of {what}, the pool has "
            f"{cell.available:,} and max_repeat is {cell.max_repeat}; lower `volume` to at most "
            f"{best:,}, {raise_to}, or change {change}"
        )


def beyond_the_pool(mixture: Mixture, manifest: PoolManifest, source: str) -> list[Cell]:
    """The outer cells at their lower quota (floor of the exact share) when the volume is more
    rows than the pool can give at all and one cell is already over, else []: a volume far
    beyond the pool (`volume=1e9`) fails at once, without building the row order (`apportion`,
    under 1 s per million rows) up to it."""
    counts, props, volume = _checked_shares(mixture, manifest, source)
    total = sum(props.values())
    cells = [
        Cell(t, None, math.floor(p / total * volume), counts.get(t, 0), repeat_cap(mixture, t))
        for t, p in sorted(props.items())
        if p > 0
    ]
    over = any(c.rows > c.available * c.max_repeat for c in cells)
    return cells if over and volume > sum(c.available * c.max_repeat for c in cells) else []


def _max_volume_of(mixture: Mixture, manifest: PoolManifest) -> int:
    """The largest volume (rows) at which every stratum of the mixture fits."""
    if not mixture.within:
        props = resolve_proportions(mixture, manifest)
        counts = manifest.labels[mixture.taxonomy]
        caps = {t: repeat_cap(mixture, t) for t in props}
        return max_volume(props, counts, caps)

    def fits(v: int) -> bool:
        cells = plan(replace(mixture, volume=v), manifest)
        return all(c.rows <= c.available * c.max_repeat for c in cells)

    # The outer labels alone bound it (cheaply); the strata inside them can only lower it.
    props = resolve_proportions(mixture, manifest)
    counts = manifest.labels[mixture.taxonomy]
    lo, hi = 0, max_volume(props, counts, {t: repeat_cap(mixture, t) for t in props})
    while lo < hi:  # largest v with fits(v); fits is monotone: no stratum shrinks as v grows
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def max_volume(
    proportions: Mapping[str, float],
    counts: Mapping[str, int],
    max_repeat: int | Mapping[str, int],
) -> int:
    """The largest volume the pool can supply at these proportions and max_repeat (per type)."""

    def cap(t: str) -> int:
        r = max_repeat.get(t, 1) if isinstance(max_repeat, Mapping) else max_repeat
        return counts.get(t, 0) * int(r)

    positive = sorted(t for t, p in proportions.items() if p > 0)
    shares = tuple(proportions[t] for t in positive)
    return largest_fitting(shares, tuple(cap(t) for t in positive))
