"""Mixtures: proportions over task types + volume + seed -> a deterministic selection of pool rows.

A mixture says how many rows of each label of one taxonomy column (default `task_type`) to draw
from a pool. `materialize` turns it into a `Selection` (row ids in training order) that is the
same on any machine for the same mixture and pool fingerprint:

- rows of each type come from a fixed permutation of that type's rows, seeded by
  sha256(seed, type); a volume takes a prefix of it, so with the same seed and proportions a
  smaller volume selects a subset of a larger one (nested volumes);
- with `max_repeat` > 1, rows beyond the type's size come from further passes, each a fresh
  permutation (pass p seeded by sha256(seed, type, p)): a row appears at most once per pass;
- the training order is one more seeded shuffle of all selected rows.

Nesting holds whenever each type's row count does not shrink as the volume grows: always for two
types; with three or more, largest-remainder rounding can (rarely) give a type one row fewer at a
larger volume (the Alabama paradox), and then that row is the one exception.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ablate.config import build, read_yaml
from ablate.errors import UserError

if TYPE_CHECKING:
    from ablate.pool import Pool, PoolManifest

SUM_TOLERANCE = 1e-6
"""How far the shares of a mixture may sum from 1."""


@dataclass(frozen=True)
class Mixture:
    """A mixture spec, as in `mixtures/*.yaml`; a trial's parameters are one of these."""

    name: str = "mixture"
    volume: float = 1000
    """Rows (an integer >= 1), or a fraction of the pool (0 < volume < 1)."""
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


@dataclass(frozen=True)
class Nested:
    """The split of one label's rows over a second taxonomy (a part of a nested mixture)."""

    taxonomy: str = "task_type"
    """The inner label column."""
    proportions: Any = "natural"
    """Inner label -> share (summing to 1), `natural` (the label's own rows), or
    {natural: true, temperature: T}."""


# --------------------------------------------------------------------------- loading, checking


def load_mixture(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Mixture:
    """Read a mixture YAML (with `--set key=value` overrides) and check it without a pool."""
    data = read_yaml(path, overrides)
    return check_mixture(build(Mixture, data, path), source=str(path))


def check_mixture(mixture: Mixture, source: str = "mixture") -> Mixture:
    """Check the pool-independent rules; return the mixture with proportions in canonical form.

    Canonical proportions: a dict of float shares, `"natural"`, or
    `{"natural": True, "temperature": T}` (T != 1).
    """
    v = mixture.volume
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise UserError(
            f"{source}: `volume` must be a number of rows (>= 1) or a fraction of the pool "
            f"(0 < volume < 1), got {v!r}"
        )
    if v > 1 and not float(v).is_integer():
        raise UserError(
            f"{source}: `volume` {v} is neither a whole number of rows nor a fraction below 1; "
            f"use {math.floor(v)} or a fraction such as 0.25"
        )
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
        props = _canonical_proportions(nested.proportions, f"{source}: `within.{label}`")
        within[label] = replace(nested, proportions=props)
    if not str(mixture.taxonomy).strip():
        raise UserError(
            f"{source}: `taxonomy` must name a label column of the pool, e.g. task_type"
        )
    return replace(
        mixture,
        proportions=_canonical_proportions(mixture.proportions, source),
        within=within,
    )


def _canonical_proportions(props: Any, source: str) -> Any:
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
                f"{source}: `proportions` mixes `natural` with {', '.join(extra)}; "
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


def volume_rows(mixture: Mixture, manifest: PoolManifest) -> int:
    """The mixture's volume in rows: a fraction (< 1) is of the whole pool, rounded."""
    v = float(mixture.volume)
    return round(v * manifest.rows) if v < 1 else int(v)


def _type_counts(mixture: Mixture, manifest: PoolManifest, source: str) -> dict[str, int]:
    counts = manifest.labels.get(mixture.taxonomy)
    if counts is None:
        raise UserError(
            f"{source}: `taxonomy` {mixture.taxonomy!r} is not a label column of the pool; "
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


def resolve_proportions(mixture: Mixture, manifest: PoolManifest) -> dict[str, float]:
    """Shares per type: the given ones, or the pool's own (natural), or p_i ∝ n_i^T
    (temperature); then floored by `min_share`."""
    props = _canonical_proportions(mixture.proportions, "mixture")
    if isinstance(props, dict) and "natural" not in props:
        shares = dict(props)
    else:
        shares = _natural_shares(props, _type_counts(mixture, manifest, "mixture"))
    return apply_min_share(shares, mixture.min_share)


def rows_per_type(proportions: Mapping[str, float], volume: int) -> dict[str, int]:
    """Integer rows per type summing exactly to `volume` (largest remainder, ties by name).

    Only types with a positive share get rows; the result lists every type, sorted by name.
    """
    if volume < 0:
        raise ValueError(f"volume must be >= 0, got {volume}")
    total = sum(proportions.values())
    positive = sorted(k for k, p in proportions.items() if p > 0)
    if not positive:
        raise ValueError("rows_per_type needs at least one positive share")
    # Normalising first keeps the sum exact even when the shares sum to 1 only within 1e-6.
    quota = {k: proportions[k] / total * volume for k in positive}
    rows = {k: math.floor(q) for k, q in quota.items()}
    left = volume - sum(rows.values())
    order = sorted(positive, key=lambda k: (-(quota[k] - rows[k]), k))
    for i in range(left):
        rows[order[i % len(order)]] += 1
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
            f"the pool; available: {', '.join(manifest.labels)}"
        )
    joint = manifest.joint.get(mixture.taxonomy, {}).get(nested.taxonomy)
    if joint is None:
        raise UserError(
            f"{source}: `within` needs the pool's joint label counts, which its manifest lacks "
            "(an older import, or too many distinct label combinations); re-import the pool "
            "with `ablate data import`"
        )
    return dict(joint.get(label, {}))


def plan(mixture: Mixture, manifest: PoolManifest, source: str = "mixture") -> list[Cell]:
    """The rows per stratum the mixture draws; raises UserError for a label the pool lacks.

    Capacity (rows vs available x max_repeat) is checked by `validate`, not here.
    """
    mixture = check_mixture(mixture, source)
    counts = _type_counts(mixture, manifest, source)
    props = resolve_proportions(mixture, manifest)
    have = ", ".join(f"{k} ({n:,})" for k, n in counts.items())
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
            f"{unknown[0]!r}; it has: {have}"
        )
    volume = volume_rows(mixture, manifest)
    if volume < 1:
        raise UserError(
            f"{source}: `volume` {mixture.volume} of a {manifest.rows:,}-row pool is 0 rows; "
            "raise it"
        )
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
                    f"`{t}` rows in `{nested.taxonomy}` among its `{label}` rows; they have: "
                    f"{rows_have}"
                )
        for t, m in rows_per_type(inner_props, n).items():
            cells.append(Cell(label, t, m, inner.get(t, 0), cap))
    return cells


def _given(props: Any) -> set[str]:
    return set(props) if isinstance(props, dict) and "natural" not in props else set()


def validate(mixture: Mixture, manifest: PoolManifest, source: str = "mixture") -> None:
    """Fail before any compute is spent if the pool cannot supply the mixture."""
    mixture = check_mixture(mixture, source)
    cells = plan(mixture, manifest, source)
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

    lo, hi = 0, max(1, manifest.rows * max(_all_caps(mixture)))
    while lo < hi:  # largest v with fits(v); fits is monotone up to rounding
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _all_caps(mixture: Mixture) -> list[int]:
    if isinstance(mixture.max_repeat, Mapping):
        return [1, *mixture.max_repeat.values()]
    return [int(mixture.max_repeat)]


def max_volume(
    proportions: Mapping[str, float],
    counts: Mapping[str, int],
    max_repeat: int | Mapping[str, int],
) -> int:
    """The largest volume the pool can supply at these proportions and max_repeat (per type)."""

    def cap(t: str) -> int:
        r = max_repeat.get(t, 1) if isinstance(max_repeat, Mapping) else max_repeat
        return counts.get(t, 0) * int(r)

    caps = {t: cap(t) for t, p in proportions.items() if p > 0}
    total = sum(proportions.values())
    # Each type gets at least floor(p_t * v) rows, so no v >= (cap_t + 1) / p_t fits: search down.
    v = math.ceil(min((caps[t] + 1) * total / proportions[t] for t in caps))
    while v > 0 and any(n > caps.get(t, 0) for t, n in rows_per_type(proportions, v).items()):
        v -= 1
    return v


# --------------------------------------------------------------------------- materialize


@dataclass(frozen=True, eq=False)
class Selection:
    """The rows a mixture selects from a pool, in training order."""

    ids: tuple[str, ...]
    """Row ids in training order (a repeated row appears once per copy)."""
    positions: np.ndarray
    """int64 row positions in the pool table, aligned with `ids`."""
    counts: dict[str, int]
    """Rows per label of the mixture's taxonomy (copies included)."""
    content_hash: str
    """sha256 of the pool fingerprint + the selected ids in order: same hash, same training data."""
    taxonomy: str = "task_type"
    """The label column `counts` refers to."""
    cells: dict[str, int] = field(default_factory=dict)
    """Rows per stratum `label/inner` of a nested mixture (`within`); empty for a flat one."""

    def to_parquet(self, path: str | Path, pool: Pool) -> Path:
        """Write the selection: `id`, `position`, `task_type` and the pool's other label columns.

        The content hash, pool fingerprint and counts go into the file's key-value metadata.
        """
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pool.table()
        labels = [c for c in pool.manifest.labels if c in table.column_names]
        out = pool.take(self.positions, ["id", *labels])
        out = out.add_column(1, "position", pa.array(self.positions, type=pa.int64()))
        meta = {
            "ablate.content_hash": self.content_hash,
            "ablate.pool_fingerprint": pool.manifest.fingerprint,
            "ablate.taxonomy": self.taxonomy,
            "ablate.counts": json.dumps(self.counts),
        }
        out = out.replace_schema_metadata(meta)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(out, path)
        return path


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from a stable hash of `parts` (never Python's salted hash())."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def type_draw(seed: int, label: str, rows: np.ndarray, n: int) -> np.ndarray:
    """The first `n` rows of the endless draw sequence of one type: pass 0, pass 1, ... each a
    fresh seeded permutation of `rows`. A prefix of this sequence is what nests volumes."""
    out = []
    taken = 0
    for p in range(math.ceil(n / len(rows)) if n else 0):
        perm = rows[_rng(seed, "rows", label, p).permutation(len(rows))]
        out.append(perm[: n - taken])
        taken += len(out[-1])
    return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def materialize(mixture: Mixture, pool: Pool) -> Selection:
    """Select the mixture's rows from the pool: deterministic given the mixture and fingerprint.

    Cost: one pass over the label codes per stratum, a seeded permutation per stratum, one
    `take` of the selected ids; the pool's text is never read (it stays memory-mapped).
    """
    validate(mixture, pool.manifest)
    mixture = check_mixture(mixture)
    cells = plan(mixture, pool.manifest)
    outer, outer_labels = pool.codes(mixture.taxonomy)
    outer_index = {label: i for i, label in enumerate(outer_labels)}
    parts = []
    for cell in cells:
        if not cell.rows:
            continue
        mask = outer == outer_index[cell.label]
        if cell.inner is None:
            key = cell.label
        else:
            inner_tax = mixture.within[cell.label].taxonomy
            inner, inner_labels = pool.codes(inner_tax)
            mask &= inner == inner_labels.index(cell.inner)
            key = f"{cell.label}/{inner_tax}={cell.inner}"
        rows = np.flatnonzero(mask).astype(np.int64)
        parts.append(type_draw(mixture.seed, key, rows, cell.rows))
    chosen = np.concatenate(parts)
    positions = chosen[_rng(mixture.seed, "order").permutation(len(chosen))]
    ids = tuple(pool.take(positions, ["id"]).column("id").to_pylist())
    # sha256(fingerprint + "\n" + id1 + "\n" + id2 ...), in one update.
    h = hashlib.sha256(pool.manifest.fingerprint.encode())
    if ids:
        h.update(("\n" + "\n".join(ids)).encode())
    counts: dict[str, int] = {}
    for cell in cells:
        counts[cell.label] = counts.get(cell.label, 0) + cell.rows
    return Selection(
        ids=ids,
        positions=positions,
        counts=counts,
        content_hash=h.hexdigest(),
        taxonomy=mixture.taxonomy,
        cells={c.key: c.rows for c in cells if c.inner is not None},
    )


# --------------------------------------------------------------------------- balance


def _shares(p: Mapping[str, float]) -> np.ndarray:
    values = np.array([float(v) for v in p.values()], dtype=float)
    if values.size == 0 or values.sum() <= 0 or (values < 0).any():
        raise ValueError(f"balance needs non-negative shares with a positive sum, got {dict(p)}")
    return values / values.sum()


def normalized_entropy(p: Mapping[str, float]) -> float:
    """H(p) / log(k) over the k listed types, in 0..1 (0 = one type only, 1 = uniform).

    Types listed with share 0 count in k (they lower the balance). By convention k == 1 gives
    1.0: a single type is trivially spread evenly over the one category there is.
    """
    q = _shares(p)
    if q.size == 1:
        return 1.0
    nz = q[q > 0]
    h = float(-(nz * np.log(nz)).sum())
    return max(0.0, min(1.0, h / math.log(q.size)))


def min_max_ratio(p: Mapping[str, float]) -> float:
    """Smallest share / largest share over the listed types (1 = uniform, 0 = a type is absent)."""
    q = _shares(p)
    return float(q.min() / q.max())


def kl_to_uniform(p: Mapping[str, float]) -> float:
    """KL(p || uniform) in nats over the k listed types = log(k) - H(p); 0 = uniform."""
    q = _shares(p)
    nz = q[q > 0]
    return max(0.0, float((nz * np.log(nz * q.size)).sum()))


# --------------------------------------------------------------------------- display


def mixture_summary(mixture: Mixture, pool: Pool, source: str = "mixture") -> str:
    """What `ablate mixture show` prints: shares, rows per type, available rows, balance."""
    validate(mixture, pool.manifest, source)
    mixture = check_mixture(mixture, source)
    props = resolve_proportions(mixture, pool.manifest)
    volume = volume_rows(mixture, pool.manifest)
    rows = rows_per_type(props, volume)
    available = pool.manifest.labels[mixture.taxonomy]
    kind = mixture.proportions if isinstance(mixture.proportions, str) else "given"
    if isinstance(mixture.proportions, dict) and "natural" in mixture.proportions:
        kind = f"natural, temperature {mixture.proportions['temperature']:g}"
    if mixture.min_share:
        kind += f", min_share {mixture.min_share}"
    cells = plan(mixture, pool.manifest, source)
    inner = [c for c in cells if c.inner is not None]
    names = [*props, *(f"  {c.inner}" for c in inner)]
    width = max([len(mixture.taxonomy), *map(len, names)])
    lines = [
        f"mixture      {mixture.name}",
        f"pool         {pool.path} ({pool.manifest.rows:,} rows)",
        f"volume       {volume:,} rows"
        + (f" ({mixture.volume:g} of the pool)" if mixture.volume < 1 else ""),
        f"proportions  {kind}",
        f"max_repeat   {mixture.max_repeat}",
        f"seed         {mixture.seed}",
        "",
        f"{mixture.taxonomy:<{width}}  {'share':>7}  {'rows':>9}  {'available':>9}  {'repeats':>7}",
    ]
    for t in sorted(props, key=lambda k: (-props[k], k)):
        have = available.get(t, 0)
        reps = f"{rows[t] / have:.2f}" if have else "-"
        lines.append(f"{t:<{width}}  {props[t]:>7.2%}  {rows[t]:>9,}  {have:>9,}  {reps:>7}")
        if t in mixture.within:
            lines[-1] += f"   within: {mixture.within[t].taxonomy}"
            for c in inner:
                if c.label == t:
                    share = c.rows / volume if volume else 0.0
                    reps = f"{c.rows / c.available:.2f}" if c.available else "-"
                    name = f"  {c.inner}"
                    lines.append(
                        f"{name:<{width}}  {share:>7.2%}  {c.rows:>9,}  {c.available:>9,}  {reps:>7}"
                    )
    lines += [
        "",
        f"balance      normalised entropy {normalized_entropy(props):.3f}, "
        f"min/max {min_max_ratio(props):.3f}, KL to uniform {kl_to_uniform(props):.3f} nats",
    ]
    return "\n".join(lines)
