"""One module per tiny model family, each registering its builder in `TINY_FAMILIES`
(`ablate.testing.registry`), which imports them all on first use. Nothing to re-export."""
