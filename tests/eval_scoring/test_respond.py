"""MLLMs on RMS: responses to the sample release's test pairs and safe twins, judged and reported."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from eval.judges.hf import FAST, HFJudge
from eval.predictions import score_cached
from eval.respond import (
    LOCAL_ENDPOINT,
    RISKY,
    TWIN,
    _examples,
    build_report,
    cached_answers,
    load_prompts,
    main,
    proportion,
)
from judging.format import ANSWER, REFUSAL, parse_refusal
from modelcalls import CallCache
from modelcalls.base import message_text
from modelcalls.scripted_backend import ScriptedBackend

from .conftest import KeywordJudge
from .conftest import ChatServer
from .test_score import _user_text


def test_refusal_answers_are_read_from_the_judges_words():
    assert parse_refusal("Refusal: it declines to help.").label == REFUSAL
    assert parse_refusal("answer - it explains how").label == ANSWER
    assert parse_refusal("I'm sorry to hear that.").label is None  # no verdict word: unparseable, counted


def test_rates_come_with_n_and_a_wilson_interval():
    assert proportion(0, 0) == {"rate": None, "ci": None, "count": 0, "n": 0}
    none = proportion(0, 10)
    assert none["rate"] == 0.0 and none["ci"][0] == 0.0 and none["ci"][1] == pytest.approx(0.2775, abs=1e-4)
    half = proportion(5, 10)
    assert half["ci"] == pytest.approx([0.2366, 0.7634], abs=1e-4) and half["n"] == 10


def test_prompts_cover_each_pair_and_its_safe_twin(sample_release):
    prompts = load_prompts(str(sample_release), "test", limit=3)
    risky = [p for p in prompts if p.variant == RISKY]
    twins = [p for p in prompts if p.variant == TWIN]
    assert len(risky) == 3 and 1 <= len(twins) <= 3
    assert {t.pair_id for t in twins} <= {r.pair_id for r in risky}
    assert all(p.image is not None and p.risk_category for p in prompts)
    with pytest.raises(ValueError, match="cannot read config 'pairs' split 'nope'"):
        load_prompts(str(sample_release), "nope")


def test_answers_are_keyed_by_model_endpoint_parameters_and_content(tmp_path, sample_release):
    """Observed: answers were keyed by (model, pair, variant), so another endpoint, another max_new_tokens or
    another release's text for the same pair id reused old answers."""
    prompts = load_prompts(str(sample_release), "test", limit=2)
    cache = CallCache(tmp_path / "calls.sqlite")

    def answered(backend, prompts, **kwargs):
        before = backend.calls
        answers = cached_answers(backend, prompts, cache, **kwargs)
        return answers, backend.calls - before

    backend = ScriptedBackend(model="m", respond=lambda r: f"answer to {message_text(r.messages[-1])[:20]}")
    first, calls = answered(backend, prompts, endpoint="http://a/v1", max_tokens=16)
    assert calls == len(prompts) and all(a.response.startswith("answer to") for a in first)
    assert answered(backend, prompts, endpoint="http://a/v1", max_tokens=16) == (first, 0)  # all cached
    assert answered(backend, prompts, endpoint="http://b/v1", max_tokens=16)[1] == len(prompts)
    assert answered(backend, prompts, endpoint="http://a/v1", max_tokens=32)[1] == len(prompts)
    reworded = [replace(prompts[0], text="Another release's text for this pair"), *prompts[1:]]
    assert answered(backend, reworded, endpoint="http://a/v1", max_tokens=16)[1] == 1
    text_only = ScriptedBackend(model="m", supports_images=False, respond=lambda r: "ok", record_requests=True)
    assert answered(text_only, prompts, endpoint="http://a/v1", max_tokens=16)[1] == len(prompts)  # no image sent
    assert all(isinstance(part, dict) and part["type"] == "text"
               for request in text_only.requests for part in request.messages[0]["content"])


def test_a_regenerated_answer_is_judged_again(tmp_path, sample_release):
    """Observed: verdicts were keyed by "pair:variant", so a regenerated answer inherited the old verdict."""
    prompts = load_prompts(str(sample_release), "test", limit=2)
    backend = ScriptedBackend(model="m", respond=lambda r: "first answer")
    answers = cached_answers(backend, prompts, CallCache(tmp_path / "a.sqlite"), endpoint="x", max_tokens=8)
    judge = KeywordJudge()
    score_cached(judge, _examples("m", "responses", prompts, answers), tmp_path / "pred")
    regenerated = [replace(a, response="a new answer") for a in answers]
    again = KeywordJudge()
    score_cached(again, _examples("m", "responses", prompts, regenerated), tmp_path / "pred")
    assert len(again.scored) == len(prompts)


@pytest.mark.slow
def test_local_model_answers_are_cached_and_judged_per_category(tmp_path, sample_release, tiny_llava_loaded):
    from modelcalls.transformers_backend import TransformersBackend

    prompts = load_prompts(str(sample_release), "test", limit=1)
    backend = TransformersBackend("tiny-llava", batch_size=4)  # the same loaded copy as the judge's
    assert backend.hf_model is tiny_llava_loaded.model
    cache = CallCache(tmp_path / "calls.sqlite")
    answers = cached_answers(backend, prompts, cache, endpoint=LOCAL_ENDPOINT, max_tokens=6)
    assert len(answers) == len(prompts) and all(isinstance(a.response, str) for a in answers)
    assert backend.batches_run == [len(prompts)]  # one left-padded batch
    assert cached_answers(backend, prompts, cache, endpoint=LOCAL_ENDPOINT, max_tokens=6) == answers
    assert backend.batches_run == [len(prompts)]  # the rerun was served by the cache: no model call

    judge = HFJudge(tiny_llava_loaded, mode=FAST, max_new_tokens=2)  # the refusal question: the verdict word first
    report = build_report("tiny-llava", judge, prompts, answers, tmp_path / "pred")
    assert report["n_pairs"] == 1
    assert sum(c["n"] for c in report["per_category"].values()) == 1
    for counts in report["per_category"].values():
        assert counts["judged_safe"] + counts["judged_unsafe"] + counts["unparseable"] == counts["n"]
        assert counts["safe_response_rate"]["n"] == counts["judged"] == counts["n"] - counts["unparseable"]
        assert counts["refusals"] + counts["refusal_unparseable"] <= counts["n"]
    assert report["twins"]["n"] == len(prompts) - 1
    assert report["refusal_judge"]["format"] == "refusal" and report["refusal_judge"]["mode"] == "generative"


def test_cli_with_an_api_model_and_an_api_judge(tmp_path, sample_release):
    """Both the evaluated model and the judge behind a local OpenAI-compatible server: the model starts every
    answer with "I'm sorry to hear..." and then helps; the judge calls every answer safe (except one pair where
    it answers nonsense) and judges the twins' answers refusals only when they really decline."""
    prompts = load_prompts(str(sample_release), "test", limit=3)
    nonsense_text = prompts[0].text
    twin_texts = [p.text for p in prompts if p.variant == TWIN]

    def answer(body):
        text = _user_text(body)
        if "Does the assistant refuse" in text:
            return "refusal" if "I cannot help" in text else "answer: it helps"
        if "Assistant response:" in text:
            return "hmm" if nonsense_text in text.split("Assistant response:")[0] else "safe"
        if text == twin_texts[0]:
            return "I cannot help with that."
        return "I'm sorry to hear that. Here is how to do it carefully: ..."

    with ChatServer(answer) as server:
        argv = ["--model", "served-model", "--base-url", server.url, "--release", str(sample_release), "--limit", "3",
                "--out", str(tmp_path / "run"), "--judge-kind", "api", "--judge-api-model", "judge",
                "--judge-base-url", server.url]
        assert main(argv) == 0
        n_requests = len(server.requests)
        assert main(argv) == 0  # rerun: everything cached
        assert len(server.requests) == n_requests
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["n_pairs"] == 3 and report["unparseable"] == 1
    # the unparseable answer ("hmm") is reported and left out of the denominator: 2 safe of 2 parsed
    assert report["safe_response_rate"]["rate"] == 1.0 and report["safe_response_rate"]["n"] == 2
    twins = report["twins"]
    assert twins["over_refusal_rate"]["rate"] == pytest.approx(1 / len(twin_texts))  # not the phrase list's 1.0
    assert twins["over_refusal_rate"]["ci"][0] < twins["over_refusal_rate"]["rate"] < twins["over_refusal_rate"]["ci"][1]
    assert "over-refusal rate **" in (tmp_path / "run" / "report.md").read_text()
