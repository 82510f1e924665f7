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
    assert judge_metrics(run.verdicts) == {"judge_unscored": 2.0}  # never a silent 0


def test_timeouts_are_retried_then_unscored(judge_server: Any, tmp_path: Path) -> None:
    judge_server.mode = "slow"
    run = judge_answers(
        _spec(judge_server, tmp_path, retries=1, timeout_s=0.2), ITEMS[:1], tmp_path
    )
    (v,) = run.verdicts
    assert v.scores is None and v.attempts == 2 and "timed out" in str(v.error)
    assert run.errors == {"timeout": 2}


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
