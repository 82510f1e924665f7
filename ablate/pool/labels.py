"""Task-type labelling as declared rules: each label column of a pool is `NAME=RULE`.

A rule is one line of text (on the command line: `--label NAME=RULE`; in a labels YAML file:
`NAME: RULE`):

- `images:BUCKETS` and `turns:BUCKETS`: buckets of the image count or of the number of assistant
  turns. BUCKETS is a comma-separated list of `RANGE[=LABEL]`, RANGE being `N`, `N-M` or `N+`;
  a bucket without a label is named after its range (`2-4`). Buckets may not overlap; a record
  no bucket covers is invalid (code `unlabelled`), never silently lumped with others.
- `field:NAME`: the record's scalar field NAME (`unknown` when a record lacks it).
- `python:MODULE:FUNCTION`: `FUNCTION(record) -> str`, with the record in the LLaVA layout plus
  `n_images` and `n_turns`; an exception or a non-string result makes the record invalid.
- `value:TEXT`: the same label for every record (e.g. the dataset's name).

The default `task_type` is `images:0=text_only,1=single_image,2+=multi_image`.

`label_columns` turns one import's declared rules and `label_fields` into its label columns.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.config import read_yaml
from ablate.errors import UserError
from ablate.pool.store import BASE_SCHEMA, TASK_TYPE

UNKNOWN = "unknown"
"""Label of a record that lacks the field a `field:` rule reads."""

DEFAULT_TASK_TYPE_RULE = "images:0=text_only,1=single_image,2+=multi_image"

SOURCE_LABEL = "source"
"""The label column naming each record's source in a combined pool."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_RANGE = re.compile(r"^(\d+)(?:(\+)|-(\d+))?$")


class LabelError(Exception):
    """A rule could not label one record; the importer turns it into an invalid record."""


@dataclass(frozen=True)
class Bucket:
    low: int
    high: int | None
    """Inclusive upper end; None = no upper end (`N+`)."""
    label: str

    def covers(self, n: int) -> bool:
        return n >= self.low and (self.high is None or n <= self.high)


@dataclass(frozen=True)
class LabelRule:
    """One label column: its name, the rule text and the parsed rule."""

    name: str
    text: str
    kind: str
    """images | turns | field | python | value"""
    arg: str = ""
    buckets: tuple[Bucket, ...] = ()
    func: Callable[[dict[str, Any]], Any] | None = None

    def apply(self, record: Mapping[str, Any], n_images: int, n_turns: int) -> str:
        """The label of one validated record, or LabelError saying why there is none."""
        if self.kind in ("images", "turns"):
            n = n_images if self.kind == "images" else n_turns
            for b in self.buckets:
                if b.covers(n):
                    return b.label
            what = "image(s)" if self.kind == "images" else "assistant turn(s)"
            raise LabelError(
                f"no bucket of label `{self.name}` ({self.text}) covers {n} {what}; "
                "add a bucket such as `N+=other`"
            )
        if self.kind == "field":
            return field_label(record, self.arg)
        if self.kind == "value":
            return self.arg
        assert self.func is not None
        try:
            out = self.func({**record, "n_images": n_images, "n_turns": n_turns})
        except Exception as err:  # a user function's bug becomes this record's reason
            raise LabelError(
                f"label `{self.name}`: {self.arg} raised {type(err).__name__}: {err}"
            ) from None
        if not isinstance(out, str) or not out.strip():
            raise LabelError(
                f"label `{self.name}`: {self.arg} returned {out!r}, expected a non-empty string"
            )
        return out


def field_label(record: Mapping[str, Any], name: str) -> str:
    """The label a `field:NAME` rule gives: a non-empty string or a number, else `unknown`."""
    value = record.get(name)
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return UNKNOWN


def parse_rule(name: str, text: str, where: str = "--label") -> LabelRule:
    """Parse `RULE` for label column `name`; a mistake raises UserError naming `where`."""
    if not _NAME.match(name):
        raise UserError(
            f"{where}: label name {name!r} must start with a letter or _ and use letters, "
            "digits, _ . - only"
        )
    kind, sep, arg = text.strip().partition(":")
    usage = (
        "images:BUCKETS, turns:BUCKETS (e.g. images:0=text_only,1=single_image,2+=multi_image), "
        "field:NAME, python:MODULE:FUNCTION or value:TEXT"
    )
    if not sep or kind not in ("images", "turns", "field", "python", "value") or not arg.strip():
        raise UserError(f"{where}: `{name}={text}` is not a rule; use {usage}")
    arg = arg.strip()
    if kind in ("images", "turns"):
        return LabelRule(name, text, kind, arg, buckets=_parse_buckets(name, text, arg, where))
    if kind == "python":
        return LabelRule(name, text, kind, arg, func=_load_function(name, arg, where))
    return LabelRule(name, text, kind, arg)


def _parse_buckets(name: str, text: str, spec: str, where: str) -> tuple[Bucket, ...]:
    buckets: list[Bucket] = []
    for part in spec.split(","):
        rng, _, label = part.strip().partition("=")
        m = _RANGE.match(rng.strip())
        if not m:
            raise UserError(
                f"{where}: `{name}={text}`: bucket {part.strip()!r} is not N, N-M or N+ "
                "(optionally followed by =LABEL)"
            )
        low = int(m.group(1))
        high = None if m.group(2) else int(m.group(3)) if m.group(3) else low
        if high is not None and high < low:
            raise UserError(f"{where}: `{name}={text}`: bucket {rng} runs backwards")
        b = Bucket(low, high, label.strip() or rng.strip())
        for other in buckets:
            top = min(x for x in (b.high, other.high, 10**9) if x is not None)
            if max(b.low, other.low) <= top:
                raise UserError(
                    f"{where}: `{name}={text}`: buckets {other.label!r} and {b.label!r} overlap"
                )
        buckets.append(b)
    return tuple(buckets)


def _load_function(name: str, target: str, where: str) -> Callable[[dict[str, Any]], Any]:
    module_name, sep, func_name = target.partition(":")
    if not sep or not module_name or not func_name:
        raise UserError(f"{where}: `{name}=python:{target}`: expected python:MODULE:FUNCTION")
    try:
        module = _import_from_cwd(module_name)
    except ImportError as err:
        raise UserError(
            f"{where}: `{name}=python:{target}`: cannot import {module_name} ({err}); "
            f"looked in the current folder {Path.cwd()} and on PYTHONPATH"
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise UserError(
            f"{where}: `{name}=python:{target}`: {module_name} has no function {func_name}"
        )
    return func


def _import_from_cwd(module_name: str) -> Any:
    """Import a label rules module, the current folder searched first (as `python -m` does),
    so `--label k=python:my_rules:kind` finds `my_rules.py` beside the command."""
    cwd = str(Path.cwd())
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # a module written since the folder was last listed
    return importlib.import_module(module_name)


def parse_label_args(items: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`--label NAME=RULE` arguments -> ((name, rule), ...)."""
    out = []
    for item in items:
        name, sep, rule = item.partition("=")
        if not sep:
            raise UserError(
                f"--label {item!r}: expected NAME=RULE, e.g. --label images=images:1,2,3,4+"
            )
        out.append((name.strip(), rule.strip()))
    return tuple(out)


def read_label_file(path: str | Path) -> tuple[tuple[str, str], ...]:
    """A labels YAML file: a mapping of label name -> rule text."""
    data = read_yaml(path)
    out = []
    for name, rule in data.items():
        if not isinstance(rule, str):
            raise UserError(
                f"{path}: `{name}` must be a rule string such as `images:1,2,3,4+` or "
                f"`field:domain`, got {rule!r}"
            )
        parse_rule(str(name), rule, where=str(path))  # fail early, naming the file
        out.append((str(name), rule))
    return tuple(out)


@dataclass
class LabelColumns:
    """The label columns of one import, in column order."""

    rules: dict[str, LabelRule]
    implicit: set[str] = field(default_factory=set)
    """`label_fields` columns: dropped when no record has the field."""
    per_source: bool = False
    """`source` is the source's name (combined pool) rather than a rule."""

    @property
    def names(self) -> list[str]:
        names = list(self.rules)
        if self.per_source and SOURCE_LABEL not in names:
            names.append(SOURCE_LABEL)
        return names


def label_columns(
    labels: tuple[tuple[str, str], ...], label_fields: tuple[str, ...], combined: bool
) -> LabelColumns:
    """`task_type` first, then the `label_fields` no rule redefines, then the declared rules.

    `labels` are the declared (name, rule) pairs; `combined`: several sources (or a named one),
    whose rows get a `source` column unless a rule declares it.
    """
    declared = dict(labels)
    if len(declared) != len(labels):
        dup = [n for n, _ in labels if sum(m == n for m, _ in labels) > 1]
        raise UserError(f"--label {dup[0]} is declared twice; give each label column once")
    reserved = [n for n in [*label_fields, *declared] if n in BASE_SCHEMA.names and n != TASK_TYPE]
    if reserved:
        raise UserError(
            f"label name(s) {', '.join(reserved)} clash with pool columns "
            f"({', '.join(BASE_SCHEMA.names)}); choose other names"
        )
    rules = {TASK_TYPE: parse_rule(TASK_TYPE, declared.pop(TASK_TYPE, DEFAULT_TASK_TYPE_RULE))}
    implicit = set()
    per_source = combined and SOURCE_LABEL not in declared
    for name in label_fields:
        if name in declared or (per_source and name == SOURCE_LABEL):
            continue
        rules[name] = parse_rule(name, f"field:{name}", where="label_fields")
        implicit.add(name)
    for name, text in declared.items():
        rules[name] = parse_rule(name, text)
    return LabelColumns(rules, implicit, per_source)
