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

Nesting holds because no type's row count shrinks as the volume grows (`apportion`), with any
number of types.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ablate.errors import UserError
from ablate.mixture.heldout import manifest_without
from ablate.mixture.plan import (
    plan,
    validate,
)
from ablate.mixture.spec import Mixture, check_mixture
from ablate.pool import Pool


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

        path = check_out_path(path)
        labels = [c for c in pool.manifest.labels if c in pool.manifest.columns]
        out = pool.take(self.positions, ["id", *labels])
        out = out.add_column(1, "position", pa.array(self.positions, type=pa.int64()))
        meta = {
            "ablate.content_hash": self.content_hash,
            "ablate.pool_fingerprint": pool.manifest.fingerprint,
            "ablate.taxonomy": self.taxonomy,
            "ablate.counts": json.dumps(self.counts),
        }
        out = out.replace_schema_metadata(meta)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(out, path)
        except OSError as err:
            raise UserError(f"--out {path}: cannot write it ({err.strerror or err})") from err
        return path


def check_out_path(path: str | Path, flag: str = "--out") -> Path:
    """`path` as a file to write, or UserError naming `flag` and the fix: it must not be an
    existing folder, and no folder above it may be an existing file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(
            f"{flag} {path} is a folder; give a file such as {path / 'selection.parquet'}"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(
                    f"{flag} {path}: {parent} is a file, not a folder; write elsewhere, e.g. "
                    f"{flag} {path.name}"
                )
            break
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


def materialize(
    mixture: Mixture, pool: Pool, exclude: np.ndarray | None = None, source: str = "mixture"
) -> Selection:
    """Select the mixture's rows from the pool: deterministic given the mixture and fingerprint
    (and `exclude`: pool positions never drawn, e.g. a job's held-out rows; the volume and
    shares are then drawn in full from the rest). `source` names the mixture in a supply error.

    Cost: one pass over the label codes per stratum, a seeded permutation per stratum, one
    `take` of the selected ids; the pool's text is never read (it stays memory-mapped).
    """
    exclude = np.empty(0, dtype=np.int64) if exclude is None else exclude
    manifest = manifest_without(pool, exclude)
    validate(mixture, manifest, source)
    mixture = check_mixture(mixture)
    cells = plan(mixture, manifest)
    allowed = None
    if len(exclude):
        allowed = np.ones(pool.manifest.rows, dtype=bool)
        allowed[exclude] = False
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
        if allowed is not None:
            mask &= allowed
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
