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
from dataclasses import dataclass, replace
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
    max_repeat: int = 1
    """1 = no upsampling; 2 = a row may appear twice."""
    seed: int = 0


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
    if isinstance(mixture.max_repeat, bool) or mixture.max_repeat < 1:
        raise UserError(
            f"{source}: `max_repeat` must be an integer >= 1 (1 = no upsampling), got {mixture.max_repeat!r}"
        )
    if not str(mixture.taxonomy).strip():
        raise UserError(
            f"{source}: `taxonomy` must name a label column of the pool, e.g. task_type"
        )
    return replace(mixture, proportions=_canonical_proportions(mixture.proportions, source))


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


def resolve_proportions(mixture: Mixture, manifest: PoolManifest) -> dict[str, float]:
    """Shares per type: the given ones, or the pool's own (natural), or p_i ∝ n_i^T (temperature)."""
    props = _canonical_proportions(mixture.proportions, "mixture")
    if isinstance(props, dict) and "natural" not in props:
        return dict(props)
    counts = {k: n for k, n in _type_counts(mixture, manifest, "mixture").items() if n > 0}
    t = props["temperature"] if isinstance(props, dict) else 1.0
    weights = {k: float(n) ** t for k, n in counts.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


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


def validate(mixture: Mixture, manifest: PoolManifest, source: str = "mixture") -> None:
    """Fail before any compute is spent if the pool cannot supply the mixture."""
    mixture = check_mixture(mixture, source)
    counts = _type_counts(mixture, manifest, source)
    props = resolve_proportions(mixture, manifest)
    have = ", ".join(f"{k} ({n:,})" for k, n in counts.items())
    for t, p in props.items():
        if p > 0 and counts.get(t, 0) == 0:
            raise UserError(
                f"{source}: `proportions.{t}` is {p:g} but the pool has no `{t}` rows in "
                f"`{mixture.taxonomy}`; the pool has: {have}"
            )
    volume = volume_rows(mixture, manifest)
    if volume < 1:
        raise UserError(
            f"{source}: `volume` {mixture.volume} of a {manifest.rows:,}-row pool is 0 rows; "
            "raise it"
        )
    need = rows_per_type(props, volume)
    for t, n in need.items():
        cap = counts.get(t, 0) * mixture.max_repeat
        if n > cap:
            repeat = max(math.ceil(need[k] / counts[k]) for k in need if need[k])
            raise UserError(
                f"{source}: `volume` needs {n:,} rows of {t}, the pool has {counts[t]:,} and "
                f"max_repeat is {mixture.max_repeat}; lower `volume` to at most "
                f"{max_volume(props, counts, mixture.max_repeat):,}, raise `max_repeat` to "
                f"{repeat}, or change `proportions`"
            )


def max_volume(proportions: Mapping[str, float], counts: Mapping[str, int], max_repeat: int) -> int:
    """The largest volume the pool can supply at these proportions and max_repeat."""
    caps = {t: counts.get(t, 0) * max_repeat for t, p in proportions.items() if p > 0}
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

    def to_parquet(self, path: str | Path, pool: Pool) -> Path:
        """Write the selection: `id`, `position`, `task_type` and the pool's other label columns.

        The content hash, pool fingerprint and counts go into the file's key-value metadata.
        """
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pool.table()
        labels = [c for c in pool.manifest.labels if c in table.column_names]
        out = table.select(["id", *labels]).take(pa.array(self.positions, type=pa.int64()))
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
    """Select the mixture's rows from the pool: deterministic given the mixture and fingerprint."""
    validate(mixture, pool.manifest)
    mixture = check_mixture(mixture)
    props = resolve_proportions(mixture, pool.manifest)
    counts = rows_per_type(props, volume_rows(mixture, pool.manifest))
    labels = pool.labels(mixture.taxonomy)
    parts = []
    for label, n in counts.items():
        if n:
            rows = np.flatnonzero(labels == label).astype(np.int64)
            parts.append(type_draw(mixture.seed, label, rows, n))
    chosen = np.concatenate(parts)
    positions = chosen[_rng(mixture.seed, "order").permutation(len(chosen))]
    ids = tuple(pool.table().column("id").take(positions).to_pylist())
    h = hashlib.sha256(pool.manifest.fingerprint.encode())
    for rid in ids:
        h.update(b"\n" + rid.encode())
    return Selection(
        ids=ids,
        positions=positions,
        counts=counts,
        content_hash=h.hexdigest(),
        taxonomy=mixture.taxonomy,
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
    width = max([len(mixture.taxonomy), *map(len, props)])
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
    lines += [
        "",
        f"balance      normalised entropy {normalized_entropy(props):.3f}, "
        f"min/max {min_max_ratio(props):.3f}, KL to uniform {kl_to_uniform(props):.3f} nats",
    ]
    return "\n".join(lines)
