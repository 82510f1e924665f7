"""Reading a judge's reply: the five MMCR ratings from JSON, or from prose as a fallback.

`parse_scores(text)` looks, in order, for a JSON object with the five dimensions (anywhere in the
text, in a code fence, nested one level as `{"ratings": {...}}`, keys in any case and by their
long names), then for prose naming each dimension with a rating (`precision: 4`, `**Absence of
redundancy** - 5/5`). A rating is a number 1..5 (a decimal is rounded); anything else raises
ValueError with the reason, which the judge puts in its format reminder and its cache.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

DIMENSIONS = ("precision", "references", "logic", "theme", "redundancy")
#: The lowest and highest rating of a dimension.
RATINGS = (1, 5)

#: The names a judge uses for each dimension (lower case), longest first.
ALIASES: dict[str, tuple[str, ...]] = {
    "precision": ("precision and conciseness", "precision & conciseness", "precision"),
    "references": (
        "consistency of contextual references",
        "contextual references",
        "references",
        "reference",
    ),
    "logic": ("logical contextual relationship", "logical relationship", "logical", "logic"),
    "theme": ("clarity of dialogue theme", "dialogue theme", "theme"),
    "redundancy": ("absence of redundancy", "redundancy"),
}
_KEY = {alias: dim for dim, names in ALIASES.items() for alias in names}
_THINK = re.compile(r"<think>.*?</think>", flags=re.S | re.I)


def parse_scores(text: str) -> dict[str, int]:
    """The five ratings in `text` (see the module doc); ValueError saying what is missing."""
    text = _THINK.sub("", text)
    found = _from_json(text)
    if found is not None:
        return found
    return _from_prose(text)


def _from_json(text: str) -> dict[str, int] | None:
    """The first JSON object of `text` that names every dimension; None when there is none;
    ValueError when one names them with a bad rating."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            data, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        for candidate in (data, *[v for v in data.values() if isinstance(v, dict)]):
            named = {_KEY.get(str(k).strip().lower()): v for k, v in candidate.items()}
            if all(dim in named for dim in DIMENSIONS):
                return {dim: _rating(dim, named[dim]) for dim in DIMENSIONS}
    return None


def _from_prose(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    lowered = text.lower()
    for dim, names in ALIASES.items():
        pattern = (
            r"(?<![a-z])(?:" + "|".join(re.escape(n) for n in names) + r")(?![a-z])"
            r"[^0-9\n]{0,24}?(\d+(?:\.\d+)?)(?!\.?\d)(?:\s*/\s*5)?"
        )
        match = re.search(pattern, lowered)
        if match:
            out[dim] = _rating(dim, float(match.group(1)))
    missing = [d for d in DIMENSIONS if d not in out]
    if missing:
        if not out and "{" not in text:
            raise ValueError("no JSON object and no ratings in the judge's answer")
        raise ValueError(f"no rating for {', '.join(missing)} in the judge's answer")
    return out


def _rating(dim: str, value: Any) -> int:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value.strip().split("/")[0])
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not RATINGS[0] <= value <= RATINGS[1]
    ):
        raise ValueError(f"dimension {dim!r} is {value!r}, not a rating {RATINGS[0]}..{RATINGS[1]}")
    return round(value)
