"""The LLM judge against a real OpenAI-compatible HTTP server on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ablate.bench import JudgeSpec
from ablate.bench.judge import JudgeItem, Verdict, judge_answers, judge_metrics, parse_scores

ITEMS = [
    JudgeItem(
        context="user: <image> What is it?\nassistant: a circle",
        question="Where is it?",
        reference="top left",
        answer="top left",
    ),
    JudgeItem(context="", question="What color?", reference="red", answer=""),
]


def _spec(server: Any, tmp_path: Path, **kw: Any) -> JudgeSpec:
    return JudgeSpec(
        url=server.url,
        model="judge-7b",
        cache=str(tmp_path / "cache.sqlite"),
        retries=kw.pop("retries", 2),
        **kw,
    )


def test_scores_are_cached_and_carry_the_judge_identity(
    judge_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", "sk-secret-123")
    spec = _spec(judge_server, tmp_path, api_key_env="JUDGE_KEY")
    run = judge_answers(spec, ITEMS, tmp_path)
    assert [v.scores for v in run.verdicts] == [
        {"precision": 5, "references": 5, "logic": 4, "theme": 5, "redundancy": 5},
        {"precision": 2, "references": 2, "logic": 4, "theme": 5, "redundancy": 5},
    ]
    assert all(
        v.judge == {"model": "judge-7b", "rubric_version": 1, "url": judge_server.url}
        for v in run.verdicts
    )
    assert run.requests == 2 and run.cache_hits == 0
    auth, body = judge_server.seen[0]
    assert auth == "Bearer sk-secret-123" and body["model"] == "judge-7b"
    assert body["temperature"] == 0 and "precision" in body["messages"][0]["content"]
    # structured output: the ratings' JSON schema, which the server took
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["precision", "references", "logic", "theme", "redundancy"]
    assert run.identity["output"] == "json_schema" and run.identity["host"].startswith("127.0")
    # re-scoring costs nothing: every verdict comes from the cache
    again = judge_answers(spec, ITEMS, tmp_path)
    assert again.requests == 0 and again.cache_hits == 2
    assert [v.scores for v in again.verdicts] == [v.scores for v in run.verdicts]
    assert "sk-secret" not in repr(run) + repr(again)
    # another rubric version is another cache key
    bumped = judge_answers(_spec(judge_server, tmp_path, rubric_version=2), ITEMS, tmp_path)
    assert bumped.requests == 2


def test_a_missing_api_key_variable_is_a_user_error(judge_server: Any, tmp_path: Path) -> None:
    from ablate.errors import UserError

    with pytest.raises(UserError, match=r"\$NOT_SET_ANYWHERE"):
        judge_answers(
            _spec(judge_server, tmp_path, api_key_env="NOT_SET_ANYWHERE"), ITEMS, tmp_path
        )


def test_unparsable_answers_are_retried_then_unscored(judge_server: Any, tmp_path: Path) -> None:
    judge_server.mode = "flaky"  # garbage first, then a rating: the retry scores it
    run = judge_answers(_spec(judge_server, tmp_path), ITEMS[:1], tmp_path)
    assert run.verdicts[0].scores is not None and run.verdicts[0].attempts == 2
    assert run.errors == {"unparsable": 1}
    judge_server.mode = "garbage"
    run = judge_answers(_spec(judge_server, tmp_path / "other", retries=1), ITEMS, tmp_path)
    assert [v.scores for v in run.verdicts] == [None, None]
    assert all("unparsable" in str(v.error) and v.attempts == 2 for v in run.verdicts)
    assert run.requests == 4 and run.errors == {"unparsable": 4}
    assert judge_metrics(run.verdicts) == {  # never a silent 0
        "judge_unscored": 2.0,
        "judge_unscored/auth": 0.0,
        "judge_unscored/transport": 0.0,
        "judge_unscored/unparsable": 2.0,
    }


def test_timeouts_are_retried_then_unscored(judge_server: Any, tmp_path: Path) -> None:
    judge_server.mode = "slow"
    run = judge_answers(
        _spec(judge_server, tmp_path, retries=1, timeout_s=0.2), ITEMS[:1], tmp_path
    )
    (v,) = run.verdicts
    assert v.scores is None and v.attempts == 2 and "timed out" in str(v.error)
    assert run.errors == {"transport": 2} and v.cause == "transport"


def test_judge_metrics_follow_their_documented_definitions() -> None:
    j = {"model": "m", "rubric_version": 1, "url": "u"}
    verdicts = [
        Verdict({"precision": 5, "references": 5, "logic": 4, "theme": 5, "redundancy": 5}, j),
        Verdict({"precision": 4, "references": 3, "logic": 5, "theme": 4, "redundancy": 4}, j),
        Verdict({"precision": 1, "references": 1, "logic": 1, "theme": 1, "redundancy": 1}, j),
        Verdict(None, j, error="timed out"),
    ]
    m = judge_metrics(verdicts)
    assert m["judge_unscored"] == 1
    assert m["overall_accuracy"] == pytest.approx(2 / 3)  # mean rating >= 4: 4.8, 4.0
    assert m["contextual_accuracy"] == pytest.approx(1 / 3)  # references and logic both >= 4
    assert m["judge_score"] == pytest.approx(((4.8 - 1) / 4 + (4.0 - 1) / 4 + 0) / 3)
    assert m["judge/references"] == pytest.approx(3.0)


def test_parse_scores_needs_all_five_ratings_in_range() -> None:
    ok = {"precision": 4, "references": 5, "logic": 3, "theme": 2, "redundancy": 1}
    assert parse_scores("Sure! " + json.dumps(ok) + " done") == ok
    for bad in ["no json", json.dumps({**ok, "logic": 7}), json.dumps({"precision": 4})]:
        with pytest.raises(ValueError):
            parse_scores(bad)


def test_a_retry_after_an_unparsable_answer_adds_a_format_reminder_and_the_raw_is_kept(
    judge_server: Any, tmp_path: Path
) -> None:
    from ablate.bench.judge import cache_key
    from ablate.bench.judge_cache import JudgeCache

    judge_server.mode = "reminded"  # prose until reminded of the format
    run = judge_answers(_spec(judge_server, tmp_path), ITEMS[:1], tmp_path)
    assert run.verdicts[0].scores is not None and run.verdicts[0].attempts == 2
    first, second = (body for _, body in judge_server.seen)
    assert first != second  # never the identical request again
    assert second["messages"][:2] == first["messages"]
    assert second["messages"][2] == {"role": "assistant", "content": "I cannot rate this."}
    assert "could not be read" in second["messages"][3]["content"]
    # a judge that never answers usably: its last raw reply is kept in the cache
    judge_server.mode = "garbage"
    spec = _spec(judge_server, tmp_path / "g", retries=1)
    run = judge_answers(spec, ITEMS[:1], tmp_path)
    (v,) = run.verdicts
    assert v.cause == "unparsable" and v.raw == "I cannot rate this."
    cache = JudgeCache(tmp_path / "g" / "cache.sqlite")
    kept = cache.unparsable(cache_key("judge-7b", 1, ITEMS[0]))
    assert kept is not None and kept[0] == "I cannot rate this." and "no JSON" in kept[1]


def test_a_server_that_rejects_the_schema_is_asked_in_prose(
    judge_server: Any, tmp_path: Path
) -> None:
    judge_server.schema, judge_server.mode = "reject", "prose"
    run = judge_answers(_spec(judge_server, tmp_path, concurrency=1), ITEMS, tmp_path)
    assert [v.scores["precision"] for v in run.verdicts if v.scores] == [5, 2]
    assert run.identity["output"] == "prose" and run.errors == {}
    # one rejected request, then every request without `response_format`
    formats = ["response_format" in body for _, body in judge_server.seen]
    assert formats == [True, False, False] and run.requests == 3


def test_tolerant_prose_parsing() -> None:
    want = {"precision": 4, "references": 5, "logic": 3, "theme": 2, "redundancy": 1}
    for text in [
        "precision: 4\nreferences: 5\nlogic: 3\ntheme: 2\nredundancy: 1",
        "**Precision and conciseness**: 4/5\n**Consistency of contextual references** - 5\n"
        "Logical contextual relationship: 3 out of 5\nClarity of dialogue theme = 2\n"
        "Absence of redundancy: 1.",
        '```json\n{"Precision": 4, "References": "5", "Logic": 3, "Theme": 2, "Redundancy": 1}\n```',
        '<think>precision: 1?</think>{"ratings": {"precision": 4, "references": 5, "logic": 3, '
        '"theme": 2, "redundancy": 1}}',
    ]:
        assert parse_scores(text) == want, text
    with pytest.raises(ValueError, match="no rating for theme, redundancy"):
        parse_scores("precision: 4, references: 5, logic: 3")
    with pytest.raises(ValueError, match="not a rating"):
        parse_scores("precision: 4, references: 5, logic: 3, theme: 9, redundancy: 1")


def test_a_refused_key_is_not_retried_and_fails_the_trial_naming_the_cause(
    judge_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ablate.bench.judge import JudgeUnavailable, check_available

    judge_server.key = "right-key"
    monkeypatch.setenv("JUDGE_KEY", "wrong-key-0123456789")
    run = judge_answers(_spec(judge_server, tmp_path, api_key_env="JUDGE_KEY"), ITEMS, tmp_path)
    assert all(v.cause == "auth" and v.attempts == 1 for v in run.verdicts)
    assert run.requests == 2 and run.errors == {"auth": 2}
    assert judge_metrics(run.verdicts)["judge_unscored/auth"] == 2
    with pytest.raises(JudgeUnavailable) as err:
        check_available(run)
    msg = str(err.value)
    assert "left 2 of 2 answers unscored: HTTP 401 Unauthorized: Invalid API Key (2 refused" in msg
    assert "wrong-key" not in msg and "\n" not in msg


def test_a_dead_server_costs_seconds_and_fails_the_trial(tmp_path: Path) -> None:
    import socket
    import time

    from ablate.bench.judge import JudgeUnavailable, check_available

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = JudgeSpec(url=f"http://127.0.0.1:{port}/v1", model="m", cache=str(tmp_path / "c"))
    items = [JudgeItem("", f"q{i}", "r", "a") for i in range(40)]
    start = time.perf_counter()
    run = judge_answers(spec, items, tmp_path)
    assert time.perf_counter() - start < 10
    assert all(v.cause == "transport" for v in run.verdicts)
    assert run.requests < 40  # after a streak of failures the rest are not asked
    with pytest.raises(JudgeUnavailable, match="40 of 40 answers unscored: connection refused"):
        check_available(run)


@pytest.mark.parametrize("mode", ["html", "empty", "down500"])
def test_html_empty_and_failing_bodies_are_transport_errors(
    judge_server: Any, tmp_path: Path, mode: str
) -> None:
    judge_server.mode = mode
    run = judge_answers(_spec(judge_server, tmp_path, retries=0), ITEMS[:1], tmp_path)
    (v,) = run.verdicts
    assert v.cause == "transport"
    expect = {"html": "HTML, not JSON", "empty": "empty body", "down500": "HTTP 500"}[mode]
    assert expect in str(v.error)


def test_the_key_file_is_read_where_the_variable_is_unset(
    judge_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ablate.errors import UserError

    judge_server.key = "file-key-123"
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "judge.key").write_text("file-key-123\n")
    spec = _spec(judge_server, tmp_path, api_key_env="JUDGE_KEY", api_key_file="secrets/judge.key")
    run = judge_answers(spec, ITEMS[:1], tmp_path)
    assert run.verdicts[0].scores is not None
    assert judge_server.seen[-1][0] == "Bearer file-key-123"
    (tmp_path / "secrets" / "judge.key").unlink()
    with pytest.raises(UserError) as err:
        judge_answers(spec, ITEMS[:1], tmp_path)
    assert "$JUDGE_KEY (not set on" in str(err.value) and "judge.key (missing)" in str(err.value)


def test_a_rubric_version_whose_text_changed_is_refused(tmp_path: Path) -> None:
    from ablate.bench.judge_cache import JudgeCache
    from ablate.errors import UserError

    cache = JudgeCache(tmp_path / "c.sqlite")
    cache.check_rubric(1, "the rubric")
    cache.check_rubric(1, "the rubric")  # the same text: fine
    with pytest.raises(UserError, match="rubric version 1 under another rubric text"):
        cache.check_rubric(1, "another rubric")


def test_cost_metrics_count_requests_tokens_and_cache_hits(
    judge_server: Any, tmp_path: Path
) -> None:
    from ablate.bench.judge import cost_metrics

    spec = _spec(judge_server, tmp_path)
    run = judge_answers(spec, ITEMS, tmp_path)
    prompts = [body["messages"][1]["content"] for _, body in judge_server.seen]
    assert cost_metrics(run) == {
        "judge_requests": 2.0,
        "judge_prompt_tokens": float(sum(len(p.split()) for p in prompts)),
        "judge_completion_tokens": 14.0,
        "judge_cache_hit_rate": 0.0,
    }
    again = cost_metrics(judge_answers(spec, [*ITEMS, ITEMS[0]], tmp_path))
    assert again["judge_requests"] == 0 and again["judge_cache_hit_rate"] == 1.0


@pytest.mark.parametrize("mode", ["ok", "prose", "flaky"])
def test_at_most_one_percent_unscored_for_format_against_a_judge_that_follows_the_rubric(
    judge_server: Any, tmp_path: Path, mode: str
) -> None:
    judge_server.mode = mode
    judge_server.schema = "reject" if mode == "prose" else "accept"
    items = [JudgeItem(f"user: q{i}", f"q{i}?", f"ref {i}", f"answer {i}") for i in range(100)]
    run = judge_answers(_spec(judge_server, tmp_path, concurrency=8), items, tmp_path)
    unparsable = judge_metrics(run.verdicts)["judge_unscored/unparsable"]
    assert unparsable <= 0.01 * len(items)
    assert unparsable == 0
