"""Benchmarks as data: a YAML file names the dialogues, their label fields, the scorer, the judge.

Data: JSONL, one dialogue per line, in the LLaVA layout (`image`: path | [paths],
`conversations`: [{from: human|gpt, value}]) with optional per-record `history` (earlier turns
given as context and never scored: the MMCR-Bench "history plus questions" layout), label
fields (`domain`, `subtopic`, ...) and per-turn fields: `contextual: true` marks a turn that
needs the dialogue's context; `choices: [...]` lists the options of a multiple-choice turn
(the reference `value` is one of them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.config import build, read_yaml, resolve_path
from ablate.errors import UserError, did_you_mean

#: Dialogue roles as chat templates name them, from either layout's names (LLaVA `from`,
#: Hugging Face `role`): what the encoder renders and the judge reads.
ROLES = {
    "human": "user",
    "gpt": "assistant",
    "user": "user",
    "assistant": "assistant",
    "system": "system",
}


@dataclass(frozen=True)
class JudgeSpec:
    """An LLM judge behind an OpenAI-compatible chat-completions endpoint (vLLM, TGI, ...)."""

    url: str
    """Base URL, e.g. http://127.0.0.1:8000/v1 (POSTs go to URL/chat/completions)."""
    model: str
    """The judge model's name as the server knows it; logged with every score."""
    api_key_env: str | None = None
    """Environment variable holding the API key (sent as a Bearer token; never logged). Each
    node reads it from its own environment: only the name travels with the job."""
    api_key_file: str | None = None
    """A file holding the key (first line; relative to the bench file), read where the judge is
    called when `api_key_env` is unset there: a secrets file on storage every node mounts."""
    rubric_version: int = 1
    """Version of ablate's MMCR rubric prompt; part of the cache key."""
    timeout_s: float = 60.0
    """Per request."""
    retries: int = 2
    """Further attempts after a timeout, a transport error or an unparsable answer (the retry
    of an unparsable answer adds a format reminder; a refused key is not retried)."""
    cache: str | None = None
    """SQLite file caching verdicts by (judge model, rubric version, question, answer);
    relative to the bench file; default `~/.cache/ablate/judge.sqlite`."""
    concurrency: int = 4
    """Requests in flight at once."""
    max_tokens: int = 256


@dataclass(frozen=True)
class BenchSpec:
    name: str
    """Shown in MLflow and reports."""
    data: str
    """JSONL of dialogues in the LLaVA layout (relative to the YAML file)."""
    version: int = 1
    """Bump when the data or scoring changes: scores of different versions do not compare."""
    domain_field: str = "domain"
    """Record field giving the domain; reported as `accuracy/<domain>`."""
    subtopic_field: str | None = None
    """Record field giving the sub-topic; reported as `accuracy/<field>=<value>`."""
    group_fields: tuple[str, ...] = ()
    """Further record fields reported as `accuracy/<field>=<value>`."""
    scorer: str = "exact"
    """A scorer of `ablate/trial/scorers/` (one file each). Built in: `exact`: greedy decoding must reproduce the reference answer token for token;
    `normalized`: the generated answer equals the reference after lower-casing and removing
    punctuation, articles and extra spaces; `choice`: the reference has the highest
    log-likelihood among the turn's `choices`; `judge`: an LLM judge scores the generated answer
    on the five MMCR dimensions (see `judge`)."""
    judge: JudgeSpec | None = None
    """Required for `scorer: judge`."""
    max_new_tokens: int = 64
    """Longest generated answer (normalized, judge)."""
    batch_size: int = 16
    """Dialogues (or prompts) per forward pass / generate call."""
    source: str = ""


def load_bench(path: str | Path, overrides: tuple[str, ...] = ()) -> BenchSpec:
    spec = build(BenchSpec, read_yaml(path, overrides), path)
    if spec.scorer == "judge" and spec.judge is None:
        raise UserError(
            f"{path}: `scorer: judge` needs a `judge:` mapping with at least `url` and `model`"
        )
    if spec.batch_size < 1 or spec.max_new_tokens < 1:
        raise UserError(f"{path}: `batch_size` and `max_new_tokens` must be positive")
    return BenchSpec(**{**spec.__dict__, "source": str(Path(path).resolve())})


def label_fields(spec: BenchSpec) -> tuple[str, ...]:
    """The record fields a score is grouped by: domain first, then sub-topic and group fields."""
    subtopic = (spec.subtopic_field,) if spec.subtopic_field else ()
    return (spec.domain_field, *subtopic, *spec.group_fields)


def record_labels(spec: BenchSpec, record: dict[str, Any]) -> dict[str, str]:
    return {
        ("domain" if f == spec.domain_field else f): str(record.get(f, "unknown"))
        for f in label_fields(spec)
    }


def bench_records(spec: BenchSpec) -> list[dict[str, Any]]:
    """The bench's dialogues, image paths made absolute against the data file's folder.

    A record's `history` turns are put in front of its `conversations`; `n_history` says how
    many turns are context only.
    """
    data = resolve_path(spec.data, Path(spec.source).parent)
    if not data.is_file():
        raise UserError(f"{spec.source}: `data` file {data} does not exist")
    records = []
    with data.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{data}:{n}: not valid JSON ({err})") from None
            if not isinstance(record, dict) or not isinstance(record.get("conversations"), list):
                raise UserError(
                    f"{data}:{n}: expected an object with a `conversations` list of turns"
                )
            images = record.get("image", record.get("images")) or []
            images = [images] if isinstance(images, str) else images
            record["images"] = [str(resolve_path(p, data.parent)) for p in images]
            history = record.get("history") or []
            if not isinstance(history, list):
                raise UserError(
                    f"{data}:{n}: `history` must be a list of turns ({{from, value}}), got "
                    f"{type(history).__name__}"
                )
            record["n_history"] = len(history)
            record["conversations"] = [*history, *record["conversations"]]
            _check_roles(record["conversations"], data, n)
            if spec.scorer == "choice":
                _check_choices(record, data, n)
            records.append(record)
    if not records:
        raise UserError(f"{data}: the bench has no dialogues")
    _check_label_fields(spec, records)
    return records


def _check_label_fields(spec: BenchSpec, records: list[dict[str, Any]]) -> None:
    """A `domain_field`, `subtopic_field` or `group_fields` entry no record has (a typo) is
    refused: every dialogue was scored as `accuracy/unknown` and the groups were lost, silently.
    The default `domain_field: domain` may be absent (a bench without domains)."""
    keys = {k for r in records for k in r} - {"n_history", "conversations"}
    named = [("domain_field", spec.domain_field)] if spec.domain_field != "domain" else []
    named += [("subtopic_field", spec.subtopic_field)] if spec.subtopic_field else []
    named += [("group_fields", f) for f in spec.group_fields]
    for key, field_name in named:
        if field_name not in keys:
            raise UserError(
                f"{spec.source}: {key} {field_name!r} is a field of none of the bench's "
                f"{len(records)} dialogues{did_you_mean(field_name, sorted(keys))}; fix it or "
                "remove it"
            )


def bench_problems(records: list[dict[str, Any]]) -> list[str]:
    """What makes a bench dialogue unscorable whatever the model: an image file that is not
    there, or a count of `<image>` placeholders that is not its count of images. One line each,
    `id: problem` (the encoder refuses the same; checked before a sweep trains anything)."""
    out = []
    for n, r in enumerate(records, 1):
        name = r.get("id", f"record {n}")
        placeholders = sum(
            str(t.get("value", t.get("content", ""))).count("<image>") for t in r["conversations"]
        )
        missing = [p for p in r["images"] if not Path(p).is_file()]
        if missing:
            out.append(f"{name}: image {missing[0]} does not exist")
        elif placeholders != len(r["images"]):
            out.append(
                f"{name}: {placeholders} <image> placeholder(s) but {len(r['images'])} image(s)"
            )
    return out


def _check_roles(turns: list[Any], data: Path, line: int) -> None:
    """Turns are {from, value} mappings whose roles alternate, a question first (after any
    system turn), as the pool's import checks its records: a chat template indexes them so,
    and two answers in a row failed inside transformers with an IndexError."""
    want = "user"
    for i, turn in enumerate(turns):
        role = (
            ROLES.get(str(turn.get("from", turn.get("role")))) if isinstance(turn, dict) else None
        )
        if role == "system" and i == 0:
            continue
        if role != want:
            got = turn.get("from", turn.get("role")) if isinstance(turn, dict) else turn
            raise UserError(
                f"{data}:{line}: turn {i} is {got!r}; a bench dialogue's turns alternate human "
                "and gpt, a human question first (`history` turns included)"
            )
        want = "assistant" if want == "user" else "user"


def _check_choices(record: dict[str, Any], data: Path, line: int) -> None:
    for turn in record["conversations"][record["n_history"] :]:
        if turn.get("from") not in ("gpt", "assistant"):
            continue
        choices = turn.get("choices")
        if not isinstance(choices, list) or len(choices) < 2:
            raise UserError(
                f"{data}:{line}: `scorer: choice` needs `choices` (a list of 2 or more answers) "
                "on every assistant turn"
            )
        if turn.get("value") not in choices:
            raise UserError(
                f"{data}:{line}: the reference answer {turn.get('value')!r} is not among its "
                f"`choices` {choices}"
            )
