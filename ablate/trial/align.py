"""Token alignment between a rendering's tokens and the processor's, whose image placeholders
are expanded into runs of image tokens (see `ablate.trial.encode`)."""

from __future__ import annotations

__all__ = ["align"]


def align(short: list[int], expanded: list[int], placeholder: int) -> list[int] | None:
    """Position in `expanded` of each token of `short`, -1 for placeholders (expanded away).

    `expanded` is `short` with every `placeholder` replaced by some run of tokens; the text
    chunks between placeholders appear unchanged and in order. None when they do not.
    """
    mapping = [-1] * len(short)
    cuts = [i for i, x in enumerate(short) if x == placeholder]
    bounds = [-1, *cuts, len(short)]
    j = 0
    last = len(bounds) - 2
    for k in range(len(bounds) - 1):
        lo, hi = bounds[k] + 1, bounds[k + 1]
        chunk = short[lo:hi]
        n = len(chunk)
        if k == 0:
            pos = 0
            if expanded[:n] != chunk:
                return None
        elif k == last:
            pos = len(expanded) - n
            if pos < j or expanded[pos:] != chunk:
                return None
        elif not n:
            continue
        else:
            # skip at least one token (the placeholder's expansion), then find the chunk
            pos = _find(expanded, chunk, j + 1)
            if pos < 0:
                return None
        for i in range(n):
            mapping[lo + i] = pos + i
        j = pos + n
    return mapping


def _find(seq: list[int], chunk: list[int], start: int) -> int:
    first = chunk[0]
    n = len(chunk)
    i = start
    while True:
        try:
            i = seq.index(first, i)
        except ValueError:
            return -1
        if seq[i : i + n] == chunk:
            return i
        i += 1
