"""Held-out rows of the pool (`bench.heldout_of_pool`): the same rows left out of every trial of
a job, and the fine-tuned model's loss on them, per label."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ablate.mixture import Selection
from ablate.pool import Pool
from ablate.trial.encode import DialogueEncoder, PixelCache, encode_rows
from ablate.trial.evaluate import example_losses


def heldout_positions(pool: Pool, taxonomy: str, fraction: float, seed: int) -> dict[str, Any]:
    """The same held-out rows for every trial of a job: per label, a seeded share `fraction`
    (at least one row of every label with two or more)."""
    labels = pool.labels(taxonomy)
    out = {}
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)
        n = round(fraction * len(rows))
        n = max(n, 1 if len(rows) >= 2 else 0)
        digest = hashlib.sha256(f"{seed}\x1fheldout\x1f{label}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        out[label] = np.sort(rng.choice(rows, size=n, replace=False)) if n else rows[:0]
    return out


def without_heldout(
    pool: Pool, selection: Selection, heldout: dict[str, Any]
) -> tuple[Any, dict[str, int], str]:
    """The selection minus the held-out rows: positions, counts per label, a new content hash."""
    held = np.concatenate(list(heldout.values())) if heldout else np.empty(0, dtype=np.int64)
    keep = selection.positions[~np.isin(selection.positions, held)]
    labels = pool.labels(selection.taxonomy)[keep]
    counts = {k: int((labels == k).sum()) for k in selection.counts}
    h = hashlib.sha256(selection.content_hash.encode())
    for p in keep.tolist():
        h.update(b"\n" + str(p).encode())
    return keep, counts, h.hexdigest()


def heldout_metrics(
    model: Any,
    pool: Pool,
    heldout: dict[str, Any],
    encoder: DialogueEncoder,
    encoded: dict[int, Any],
    pixels: PixelCache | None,
    pad_id: int,
    device: str,
) -> dict[str, float]:
    """`heldout_loss` (per answer token, all held-out rows) and `heldout_loss/<label>` (the
    labels are those of the job's taxonomy, as `heldout_positions` drew them)."""
    total = [0.0, 0]
    out = {}
    for label, positions in heldout.items():
        examples, _, _ = encode_rows(pool, positions, encoder, encoded)
        examples = [e for e in examples if e.turn_spans]
        if not examples:
            continue
        losses = example_losses(model, examples, pixels, pad_id, device)
        loss, tokens = sum(x for x, _ in losses), sum(n for _, n in losses)
        out[f"heldout_loss/{label}"] = loss / max(1, tokens)
        total[0] += loss
        total[1] += tokens
    if total[1]:
        out["heldout_loss"] = total[0] / total[1]
    return out
