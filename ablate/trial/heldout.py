"""The fine-tuned model's loss on a job's held-out rows (`bench.heldout_of_pool`), per label; the
rows themselves, the same for every trial, are drawn by `ablate.mixture.heldout`."""

from __future__ import annotations

from typing import Any

from ablate.pool import Pool
from ablate.trial.encode import DialogueEncoder, PixelCache, encode_rows
from ablate.trial.evaluate import example_losses


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
