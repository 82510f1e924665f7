"""An LLM judge over an OpenAI-compatible chat-completions endpoint, for open answers.

Rubric (version 1): the judge rates a model's answer to one question of a multi-turn dialogue,
given the dialogue so far and a reference answer, on MMCR's five dimensions, each an integer
1..5 (1 = fails, 3 = acceptable with flaws, 5 = fully meets the criterion):

- `precision`: precision and conciseness (correct, to the point);
- `references`: consistency of contextual references (pronouns and "that image" resolve to the
  right earlier entity);
- `logic`: logical contextual relationship (follows from the earlier turns, no contradiction);
- `theme`: clarity of dialogue theme (stays on the dialogue's topic);
- `redundancy`: absence of redundancy (5 = nothing repeated or padded).

Aggregates (see `judge_metrics`): `overall_accuracy` = share of scored answers whose mean rating
is >= 4; `contextual_accuracy` = share of scored answers rated >= 4 on both context dimensions
(`references` and `logic`); `judge_score` = mean rating over all five dimensions scaled to 0..1
as (r - 1) / 4; `judge/<dimension>` = mean 1..5 rating; `judge_unscored` = answers the judge
never rated usably (after retries): they count in no denominator, never as 0;
`judge_unscored/<cause>` splits them by the cause of their last failure: `auth` (the key was
refused), `transport` (no usable HTTP answer: refused, timed out, HTML, ...), `unparsable` (an
answer without the five ratings).

Requests ask for a JSON schema (`response_format`, which vLLM, llama.cpp and OpenAI take); a
server that rejects it is asked again without, for the rest of the run, and its prose is read
tolerantly (`judge_parse`). An unparsable answer is asked again with the judge's reply and a
format reminder appended (never the identical request); its last raw reply is kept in the cache.

Verdicts are cached in SQLite by (judge model, rubric version, question, answer), where the
question is the dialogue context plus the question and the reference: re-scoring costs nothing.
The API key is read on the node that judges (`judge_http.judge_key`) and is sent only in the
Authorization header; it is never logged or stored.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.bench.judge_cache import JudgeCache, cache_path
from ablate.bench.judge_http import (
    FORMAT_REJECTED,
    OUTPUT_PROSE,
    OUTPUT_SCHEMA,
    JudgeHTTPError,
    Reply,
    chat_body,
    endpoint,
    judge_identity,
    judge_key,
    post_chat,
)
from ablate.bench.judge_parse import DIMENSIONS, parse_scores
from ablate.bench.spec import ROLES, JudgeSpec
from ablate.errors import UserError

CONTEXT_DIMENSIONS = ("references", "logic")
#: Causes of an unscored answer (its last failure), each a metric `judge_unscored/<cause>`.
CAUSES = ("auth", "transport", "unparsable")
#: A trial fails (`JudgeUnavailable`) when more than this share of its answers is unscored
#: because of the judge's server (auth or transport), not because of the answers.
UNAVAILABLE_SHARE = 0.5
#: After this many requests in a row failed on the server's side (and at least 2 per thread
#: in flight), the remaining answers are not asked: a dead server costs seconds, not timeouts.
DEAD_STREAK = 8

RUBRIC = """You are grading one answer in a multi-turn dialogue about images.
Rate the MODEL ANSWER against the dialogue so far and the REFERENCE ANSWER on five dimensions,
each an integer from 1 (fails) through 3 (acceptable with flaws) to 5 (fully meets it):
- precision: precision and conciseness: correct and to the point;
- references: consistency of contextual references: pronouns and references to earlier turns or
  images resolve to the right entity;
- logic: logical contextual relationship: follows from the earlier turns without contradiction;
- theme: clarity of dialogue theme: stays on the topic of the dialogue;
- redundancy: absence of redundancy: 5 when nothing is repeated or padded.
Reply with one JSON object and nothing else, for example
{"precision": 4, "references": 5, "logic": 4, "theme": 5, "redundancy": 5}"""

#: The ratings' JSON schema, sent as `response_format` (strict: every dimension, 1..5).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {d: {"type": "integer", "minimum": 1, "maximum": 5} for d in DIMENSIONS},
    "required": list(DIMENSIONS),
    "additionalProperties": False,
}
FORMAT_REMINDER = (
    "Your reply could not be read ({reason}). Reply again with only one JSON object, an "
    "integer 1-5 for each of precision, references, logic, theme and redundancy, for example "
    '{{"precision": 4, "references": 5, "logic": 4, "theme": 5, "redundancy": 5}}'
)


class JudgeUnavailable(UserError):
    """Most of a trial's answers went unscored because the judge's server failed (the key was
    refused, the server did not answer): the trial fails naming the cause."""


@dataclass(frozen=True)
class JudgeItem:
    context: str
    """The dialogue so far, as `role: text` lines (images shown as <image>)."""
    question: str
    reference: str
    answer: str


@dataclass
class Verdict:
    scores: dict[str, int] | None
    """Dimension -> 1..5; None when unscored."""
    judge: dict[str, Any]
    """Who judged: model, rubric version, endpoint (never the key)."""
    error: str | None = None
    """Why it is unscored (last failure after the retries)."""
    cached: bool = False
    attempts: int = 0
    cause: str | None = None
    """`auth`, `transport` or `unparsable` when unscored."""
    raw: str | None = None
    """The judge's last raw reply when it was unparsable."""


@dataclass
class JudgeRun:
    verdicts: list[Verdict]
    requests: int = 0
    cache_hits: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    """Failed attempts by cause (`auth`, `transport`, `unparsable`)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    """Token counts the server reported (`usage`), summed over requests."""
    identity: dict[str, Any] = field(default_factory=dict)
    """`judge_identity` with the output level the server took."""


def cache_key(model: str, rubric_version: int, item: JudgeItem) -> str:
    question = json.dumps([item.context, item.question, item.reference])
    payload = json.dumps([model, rubric_version, question, item.answer])
    return hashlib.sha256(payload.encode()).hexdigest()


def context_lines(record: dict[str, Any], turn_index: int) -> tuple[str, str]:
    """The dialogue before turn `turn_index` as `role: text` lines, and the question itself."""
    turns = record["conversations"][:turn_index]
    question = turns[-1]["value"] if turns else ""
    lines = [f"{ROLES.get(str(t.get('from')), 'assistant')}: {t['value']}" for t in turns[:-1]]
    return "\n".join(lines), question


def messages_of(item: JudgeItem) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": RUBRIC},
        {
            "role": "user",
            "content": f"DIALOGUE SO FAR:\n{item.context}\n\nQUESTION: {item.question}\n"
            f"REFERENCE ANSWER: {item.reference}\nMODEL ANSWER: {item.answer}",
        },
    ]


class Judge:
    """One judging session: the key (read on this node), the cache, the output level the server
    takes, and the run's counters. Thread-safe: `rate` runs in `concurrency` threads."""

    def __init__(self, spec: JudgeSpec, base_dir: Path) -> None:
        self.spec = spec
        self.key = judge_key(spec, base_dir)
        self.cache = JudgeCache(cache_path(spec, base_dir))
        self.cache.check_rubric(spec.rubric_version, RUBRIC)
        self.output = OUTPUT_SCHEMA
        self.run = JudgeRun(verdicts=[])
        self.short = {
            "model": spec.model,
            "rubric_version": spec.rubric_version,
            "url": endpoint(spec.url),
        }
        self.lock = threading.Lock()
        self.streak = 0
        self.last_failure = ("transport", "")

    def identity(self) -> dict[str, Any]:
        return judge_identity(self.spec, self.output)

    def rate(self, item: JudgeItem, use_cache: bool = True) -> Verdict:
        """The item's verdict: cached, else asked (retried), else unscored with its cause."""
        spec = self.spec
        ck = cache_key(spec.model, spec.rubric_version, item)
        hit = self.cache.get(ck) if use_cache else None
        if hit is not None:
            with self.lock:
                self.run.cache_hits += 1
            return Verdict(scores=hit, judge=self.short, cached=True)
        messages = messages_of(item)
        error, cause, raw = "no attempt", "transport", None
        for attempt in range(1, spec.retries + 2):
            if self._dead():
                if attempt > 1:
                    break  # its own last failure stands
                cause, last = self.last_failure
                error = f"not asked: {self.streak} requests in a row failed (last: {last})"
                return Verdict(None, self.short, error, attempts=0, cause=cause)
            try:
                reply = self.ask(messages)
            except JudgeHTTPError as err:
                error, cause = f"request failed: {err.detail}", err.kind
                self._count(cause, failed=err.detail)
                if cause == "auth":
                    break  # the same key is refused again: no retry
                time.sleep(min(2.0, 0.1 * 2**attempt))  # back off before the retry
                continue
            try:
                scores = parse_scores(reply.text)
            except ValueError as err:
                error, cause, raw = f"unparsable answer: {err}", "unparsable", reply.text
                self._count(cause)
                messages = [
                    *messages_of(item),
                    {"role": "assistant", "content": reply.text[:2000]},
                    {"role": "user", "content": FORMAT_REMINDER.format(reason=err)},
                ]
                continue
            self.cache.put(ck, spec.model, spec.rubric_version, scores)
            return Verdict(scores=scores, judge=self.short, attempts=attempt)
        if raw is not None:
            self.cache.put_unparsable(ck, spec.model, spec.rubric_version, raw, error)
        return Verdict(None, self.short, error, attempts=attempt, cause=cause, raw=raw)

    def ask(self, messages: list[dict[str, str]]) -> Reply:
        """One chat completion at the server's output level; a server that rejects the JSON
        schema is asked again without it (and never again with it in this session)."""
        while True:
            output = self.output
            with self.lock:
                self.run.requests += 1
            try:
                reply = post_chat(
                    self.spec, chat_body(self.spec, messages, output, SCHEMA), self.key
                )
            except JudgeHTTPError as err:
                if output == OUTPUT_SCHEMA and err.status in FORMAT_REJECTED:
                    with self.lock:
                        self.output = OUTPUT_PROSE
                    continue
                raise
            with self.lock:
                self.streak = 0
                self.run.prompt_tokens += reply.prompt_tokens
                self.run.completion_tokens += reply.completion_tokens
            return reply

    def _count(self, cause: str, failed: str | None = None) -> None:
        """A failed attempt; `failed`: the server's failure (it lengthens the streak)."""
        with self.lock:
            self.run.errors[cause] = self.run.errors.get(cause, 0) + 1
            if failed is not None:
                self.streak += 1
                self.last_failure = (cause, failed)

    def _dead(self) -> bool:
        with self.lock:
            return self.streak >= max(DEAD_STREAK, 2 * self.spec.concurrency)

    def close(self) -> None:
        self.cache.close()


def judge_answers(spec: JudgeSpec, items: Sequence[JudgeItem], base_dir: Path) -> JudgeRun:
    """Rate every item (cached verdicts first); failures are retried, then left unscored."""
    judge = Judge(spec, base_dir)
    try:
        with ThreadPoolExecutor(max_workers=max(1, spec.concurrency)) as pool:
            judge.run.verdicts = list(pool.map(judge.rate, items))
    finally:
        judge.close()
    judge.run.identity = judge.identity()
    return judge.run


def unscored_by_cause(verdicts: Sequence[Verdict]) -> dict[str, int]:
    counts = dict.fromkeys(CAUSES, 0)
    for v in verdicts:
        if v.scores is None:
            counts[v.cause or "transport"] = counts.get(v.cause or "transport", 0) + 1
    return counts


def check_available(run: JudgeRun) -> None:
    """Raise `JudgeUnavailable` when most answers are unscored because of the server."""
    n = len(run.verdicts)
    causes = unscored_by_cause(run.verdicts)
    failing = causes["auth"] + causes["transport"]
    if not n or failing <= UNAVAILABLE_SHARE * n:
        return
    details = [
        str(v.error).removeprefix("request failed: ")
        for v in run.verdicts
        if v.scores is None and str(v.error).startswith("request failed: ")
    ]
    detail = max(set(details), key=details.count) if details else "no answer"
    who = f"{run.identity.get('model')} at {run.identity.get('url')}"
    fix = (
        "check the key its `judge.api_key_env` / `judge.api_key_file` gives"
        if causes["auth"] >= causes["transport"]
        else "check that the server is up and reachable from every node"
    )
    raise JudgeUnavailable(
        f"the judge {who} left {failing} of {n} answers unscored: {detail} ({causes['auth']} "
        f"refused key, {causes['transport']} transport); {fix}, then rerun"
    )


def judge_metrics(verdicts: Sequence[Verdict]) -> dict[str, float]:
    """The judge's aggregates (see the module docstring for the definitions)."""
    scored = [v.scores for v in verdicts if v.scores is not None]
    out: dict[str, float] = {"judge_unscored": float(len(verdicts) - len(scored))}
    out.update({f"judge_unscored/{c}": float(n) for c, n in unscored_by_cause(verdicts).items()})
    if not scored:
        return out
    n = len(scored)
    out["overall_accuracy"] = sum(sum(s.values()) / len(DIMENSIONS) >= 4 for s in scored) / n
    out["contextual_accuracy"] = sum(all(s[d] >= 4 for d in CONTEXT_DIMENSIONS) for s in scored) / n
    out["judge_score"] = sum((sum(s.values()) / len(DIMENSIONS) - 1) / 4 for s in scored) / n
    for dim in DIMENSIONS:
        out[f"judge/{dim}"] = sum(s[dim] for s in scored) / n
    return out


def is_judged_metric(name: str) -> bool:
    """Whether a bench metric comes from the judge's ratings when the bench's scorer is `judge`
    (the accuracies and ratings; not the losses, nor the judge's own counts and costs)."""
    return name in ("overall_accuracy", "contextual_accuracy", "judge_score") or name.startswith(
        ("accuracy/", "judge/")
    )


def cost_metrics(run: JudgeRun) -> dict[str, float]:
    """What judging cost: requests, tokens (the server's `usage`), the cache's hit rate."""
    n = len(run.verdicts)
    return {
        "judge_requests": float(run.requests),
        "judge_prompt_tokens": float(run.prompt_tokens),
        "judge_completion_tokens": float(run.completion_tokens),
        "judge_cache_hit_rate": run.cache_hits / n if n else 0.0,
    }
