"""Llava: the world's own `tiny-llava` (CLIP + Llama, a fixed token count per image), built by
`ablate.world` as the demo builds it."""

from __future__ import annotations

from pathlib import Path

from ablate.testing.registry import family
from ablate.world import TinyModelSpec, build_tiny_model


@family("llava")
def build_tiny_llava(out: Path, corpus: list[str], seed: int = 0) -> Path:
    """The built-in tiny Llava with its default shapes, its weights drawn from `seed`."""
    return build_tiny_model(out, corpus, TinyModelSpec(seed=seed))
