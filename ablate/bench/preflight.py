"""The judge checked before any training: `check_judge(spec, bench_file, records, probe)`.

`ablate trial` and `ablate sweep` call it once, before Ray starts or anything is enqueued; each
step stops at its first failure with one line naming the cause and the fix:

    key      `judge.api_key_env` set (or `judge.api_key_file` readable) on this machine
    url      http(s), a host, and a path (an OpenAI-compatible API answers under .../v1)
    server   GET URL/models answers within SERVER_TIMEOUT_S (connection refused, timed out,
             HTTP 401/403, an HTML page, an empty body: each named); the model is listed
             when the server offers a list
    rating   one rating of a known pair (an answer equal to its reference) parses; this also
             finds out whether the server takes `response_format` (its JSON schema)
    probe    PROBE_ITEMS bench answers rated against themselves (the reference as the answer)
             each reach PROBE_MIN, the rating that makes an answer count as right: a judge that
             rates the reference itself lower does not follow the rubric. `probe=False` skips it
             (`--skip-judge-probe` on the command line)

The checks ask the server live (no cached verdict stands in for them) and cost 2 + PROBE_ITEMS
requests.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.bench.judge import DIMENSIONS, Judge, JudgeItem, Verdict, context_lines
from ablate.bench.judge_http import (
    JudgeHTTPError,
    endpoint,
    get_models,
    host_of,
    judge_identity,
)
from ablate.bench.spec import JudgeSpec
from ablate.errors import UserError

#: How long the server gets to answer GET /models (a dead or unreachable server stops here).
SERVER_TIMEOUT_S = 10.0
#: How long the test rating and the probe's ratings may take (at most the judge's timeout).
RATING_TIMEOUT_S = 30.0
#: Bench answers the probe rates against themselves, and the mean rating each must reach.
PROBE_ITEMS = 3
PROBE_MIN = 4.0
#: The known pair: an answer identical to its reference.
KNOWN = JudgeItem(
    context="user: <image> What shape is in the picture?\nassistant: A red circle.",
    question="Where is the circle?",
    reference="In the top left corner.",
    answer="In the top left corner.",
)
SKIP_FLAG = "--skip-judge-probe"


@dataclass
class JudgeCheck:
    """What the checks found: who judges (recorded with the sweep), what the server lists, the
    probe's mean ratings and how long it took."""

    identity: dict[str, Any]
    models: list[str] | None
    probe: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        """One line for the console: the judge and what was checked."""
        i = self.identity
        listed = "model listed" if self.models else "no model list offered"
        probe = (
            f", {len(self.probe)} references rated {min(self.probe):.1f}-{max(self.probe):.1f} "
            "against themselves"
            if self.probe
            else ", probe skipped"
        )
        return (
            f"judge {i['model']} at {i['url']} (rubric v{i['rubric_version']}, output "
            f"{i['output']}): server answered, {listed}, test rating parsed{probe} "
            f"({self.seconds:.1f} s)"
        )


def check_judge(
    spec: JudgeSpec, bench_file: Path, records: list[dict[str, Any]], probe: bool = True
) -> JudgeCheck:
    """Run the checks of the module doc; a UserError naming the first failure."""
    start = time.perf_counter()
    where = f"{bench_file}: judge check (before any training)"
    _check_url(spec, where)
    try:
        judge = Judge(
            dataclasses.replace(spec, timeout_s=min(spec.timeout_s, RATING_TIMEOUT_S)),
            bench_file.parent,
        )
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    try:
        models = _check_server(judge, where)
        _check_rating(judge, where)
        means = _probe(judge, records, where) if probe else []
    finally:
        judge.close()
    identity = judge_identity(spec, judge.output)  # the judge's own settings, not the check's
    return JudgeCheck(identity, models, means, time.perf_counter() - start)


def _check_url(spec: JudgeSpec, where: str) -> None:
    parts = urllib.parse.urlsplit(spec.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"{where}: `judge.url` {endpoint(spec.url)!r} is not an http(s) URL with a host; "
            "write it as http://HOST:PORT/v1"
        )
    if parts.path.strip("/") == "":
        raise UserError(
            f"{where}: `judge.url` {endpoint(spec.url)} has no /v1: an OpenAI-compatible API "
            f"answers under it; write {endpoint(spec.url)}/v1"
        )


def _check_server(judge: Judge, where: str) -> list[str] | None:
    spec = judge.spec
    try:
        models = get_models(spec, judge.key, min(spec.timeout_s, SERVER_TIMEOUT_S))
    except JudgeHTTPError as err:
        raise UserError(f"{where}: {_cause(spec, err, '/models')}") from None
    if models is not None and spec.model not in models:
        shown = ", ".join(models[:8]) + (", ..." if len(models) > 8 else "")
        raise UserError(
            f"{where}: {endpoint(spec.url)} does not serve the model `{spec.model}` (it lists: "
            f"{shown or 'nothing'}); set `judge.model` to the name the server lists"
        )
    return models


def _check_rating(judge: Judge, where: str) -> None:
    verdict = judge.rate(KNOWN, use_cache=False)
    if verdict.scores is not None:
        return
    if verdict.cause == "unparsable":
        raw = " ".join((verdict.raw or "").split())[:160]
        raise UserError(
            f"{where}: the judge's test rating could not be read after {verdict.attempts} "
            f"attempts ({verdict.error}; its reply: {raw!r}); use a judge model that follows "
            "instructions, or a server that takes `response_format`"
        )
    raise UserError(f"{where}: the test rating failed: {_verdict_cause(judge.spec, verdict)}")


def _probe(judge: Judge, records: list[dict[str, Any]], where: str) -> list[float]:
    items = probe_items(records)
    with ThreadPoolExecutor(max_workers=max(1, min(judge.spec.concurrency, len(items)))) as pool:
        verdicts = list(pool.map(lambda item: judge.rate(item, use_cache=False), items))
    failed = [v for v in verdicts if v.scores is None]
    if failed:
        v = failed[0]
        cause = v.error if v.cause == "unparsable" else _verdict_cause(judge.spec, v)
        raise UserError(
            f"{where}: {len(failed)} of {len(items)} probe ratings (bench answers rated against "
            f"themselves) failed: {cause}; pass {SKIP_FLAG} to run without the probe"
        )
    means = [sum(v.scores.values()) / len(DIMENSIONS) for v in verdicts if v.scores]
    low = [m for m in means if m < PROBE_MIN]
    if low:
        shown = ", ".join(f"{m:.1f}" for m in means)
        raise UserError(
            f"{where}: the judge rated {len(low)} of {len(means)} bench reference answers "
            f"against themselves below {PROBE_MIN:g} (mean ratings {shown}): it does not follow "
            f"the rubric, and its scores would not measure the model; use a stronger judge "
            f"model, or pass {SKIP_FLAG} to run anyway"
        )
    return means


def probe_items(records: list[dict[str, Any]], n: int = PROBE_ITEMS) -> list[JudgeItem]:
    """The first scored assistant turn of `n` records spread over the bench, each with its
    reference as the answer."""
    step = max(1, len(records) // n)
    items = []
    for record in records[::step]:
        turns = record["conversations"]
        for i, turn in enumerate(turns):
            if i >= record.get("n_history", 0) and turn.get("from") in ("gpt", "assistant"):
                context, question = context_lines(record, i)
                reference = str(turn["value"])
                items.append(JudgeItem(context, question, reference, reference))
                break
        if len(items) == n:
            break
    return items


def _verdict_cause(spec: JudgeSpec, v: Verdict) -> str:
    detail = (v.error or "").removeprefix("request failed: ")
    if v.cause == "auth":
        return (
            f"{endpoint(spec.url)} refused the API key {_key_source(spec)} ({detail}); "
            "check the key"
        )
    return f"{endpoint(spec.url)}: {detail}{_fix_hint(detail)}"


def _cause(spec: JudgeSpec, err: JudgeHTTPError, route: str) -> str:
    host = host_of(spec.url)
    if err.kind == "auth":
        return (
            f"{endpoint(spec.url)} refused the API key {_key_source(spec)} ({err.detail}); "
            "check the key"
        )
    if err.detail == "connection refused":
        return (
            f"nothing answers at {host} (connection refused); start the judge server or "
            "correct `judge.url`"
        )
    if "timed out" in err.detail:
        return f"{host} did not answer GET {route}: {err.detail}; check the server and `judge.url`"
    return f"{endpoint(spec.url)}{route} {err.detail}{_fix_hint(err.detail)}"


def _fix_hint(detail: str) -> str:
    if "HTTP 404" in detail or "HTML" in detail or "empty body" in detail:
        return "; is `judge.url` the API's base URL, ending in /v1?"
    if "connection refused" in detail:
        return "; start the judge server or correct `judge.url`"
    return ""


def _key_source(spec: JudgeSpec) -> str:
    if spec.api_key_env:
        return f"from ${spec.api_key_env}"
    if spec.api_key_file:
        return "from `judge.api_key_file`"
    return "(none configured: set `judge.api_key_env`)"
