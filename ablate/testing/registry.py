"""The tiny model families: name -> builder, for tests and benchmarks to parametrize over.

A family is one module of `ablate.testing.families` that decorates its builder with
`@family("name")`; a builder writes a random-weight model of that architecture, with its
tokenizer trained on `corpus` and its processor, to `out` (and returns `out`), offline and in
about a second. `TINY_FAMILIES.names()` lists them all; `image_text_families()` the ones with a
vision tower.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ablate.registry import Registry


class TinyBuilder(Protocol):
    def __call__(self, out: Path, corpus: list[str], seed: int = 0) -> Path: ...


TINY_FAMILIES: Registry[TinyBuilder] = Registry(
    "tiny model family", "family", package="ablate.testing.families"
)
_TEXT_ONLY: set[str] = set()


def family(name: str, *, images: bool = True) -> Callable[[TinyBuilder], TinyBuilder]:
    """Decorator: `@family("qwen2vl")` above a builder; `images=False` for a text-only family."""

    def add(builder: TinyBuilder) -> TinyBuilder:
        if not images:
            _TEXT_ONLY.add(name)
        return TINY_FAMILIES.register(name)(builder)

    return add


def image_text_families() -> list[str]:
    """The families with a vision tower (every one but the text-only ones), in registry order."""
    return [name for name in TINY_FAMILIES.names() if name not in _TEXT_ONLY]
