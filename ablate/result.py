"""`TrialResult`: what one trial returns to the driver (shared by every layer above `trial`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrialResult:
    """What one trial returns to the driver (plain data: it crosses process boundaries)."""

    metrics: dict[str, float]
    """Benchmark scores (`overall_accuracy`, `contextual_accuracy`, `accuracy/<domain>`, ...) and losses."""
    counts: dict[str, int] = field(default_factory=dict)
    """Rows per task type actually selected."""
    selection_hash: str = ""
    """Content hash of the selected rows (same hash = same training data)."""
    row_ids: tuple[str, ...] = ()
    """Pool ids of the selected rows, in training order."""
    seconds: float = 0.0
    """Wall time of the whole trial."""
    info: dict[str, Any] = field(default_factory=dict)
    """Anything else worth logging: steps, tokens, tokens per second, model, device."""
