"""MLLMs on RMS: responses to the sample release's test pairs and safe twins, judged and reported."""

from __future__ import annotations

import json

import pytest

from eval.judges.hf import FAST, HFJudge
from eval.respond import RISKY, TWIN, TransformersResponder, build_report, cached_answers, is_refusal, load_prompts, main

from .test_score import _ChatServer, _user_text


def test_refusal_detector():
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("  I cannot   assist with starting fires indoors.")
    assert not is_refusal("Sure! Keep a safe distance from the edge and wear boots.")


def test_prompts_cover_each_pair_and_its_safe_twin(sample_release):
    prompts = load_prompts(str(sample_release), "test", limit=3)
    risky = [p for p in prompts if p.variant == RISKY]
    twins = [p for p in prompts if p.variant == TWIN]
    assert len(risky) == 3 and 1 <= len(twins) <= 3
    assert {t.pair_id for t in twins} <= {r.pair_id for r in risky}
    assert all(p.image is not None and p.risk_category for p in prompts)
    with pytest.raises(ValueError, match="cannot read config 'pairs' split 'nope'"):
        load_prompts(str(sample_release), "nope")


@pytest.mark.slow
def test_local_model_answers_are_cached_and_judged_per_category(tmp_path, sample_release, tiny_llava_loaded):
    prompts = load_prompts(str(sample_release), "test", limit=2)
    responder = TransformersResponder("tiny-llava", max_new_tokens=6, batch_size=4, loaded=tiny_llava_loaded)
    answers = cached_answers(responder, prompts, tmp_path / "responses.jsonl")
    assert len(answers) == len(prompts) and all(isinstance(a.response, str) for a in answers)

    class NoMoreGeneration(TransformersResponder):
        def answer(self, prompts):
            raise AssertionError(f"{len(prompts)} prompts answered again; they were cached")

    again = cached_answers(NoMoreGeneration("tiny-llava", loaded=tiny_llava_loaded), prompts, tmp_path / "responses.jsonl")
    assert again == answers

    report = build_report("tiny-llava", HFJudge(tiny_llava_loaded, mode=FAST), prompts, answers, tmp_path / "pred")
    assert report["n_pairs"] == 2
    assert sum(c["n"] for c in report["per_category"].values()) == 2
    for counts in report["per_category"].values():
        assert counts["judged_safe"] + counts["judged_unsafe"] + counts["unparseable"] == counts["n"]
        assert 0.0 <= counts["safe_response_rate"] <= 1.0
    assert report["twins"]["n"] == len(prompts) - 2


def test_cli_with_an_api_model_and_an_api_judge(tmp_path, sample_release):
    """Both the evaluated model and the judge behind a local OpenAI-compatible server: the model refuses
    everything, the judge calls every refusal safe except on one pair where it answers nonsense."""
    prompts = load_prompts(str(sample_release), "test", limit=3)
    nonsense_text = prompts[0].text

    def answer(body):
        text = _user_text(body)
        if "Assistant response:" not in text:
            return "I'm sorry, but I can't help with that."
        return "hmm" if nonsense_text in text.split("Assistant response:")[0] else "safe"

    with _ChatServer(answer) as server:
        argv = ["--model", "served-model", "--base-url", server.url, "--release", str(sample_release), "--limit", "3",
                "--out", str(tmp_path / "run"), "--judge-kind", "api", "--judge-api-model", "judge",
                "--judge-base-url", server.url]
        assert main(argv) == 0
        n_requests = len(server.requests)
        assert main(argv) == 0  # rerun: everything cached
        assert len(server.requests) == n_requests
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["n_pairs"] == 3 and report["unparseable"] == 1
    assert report["safe_response_rate"] == pytest.approx(2 / 3)
    assert report["twins"]["over_refusal_rate"] == 1.0
    assert "over-refusal rate **1.000**" in (tmp_path / "run" / "report.md").read_text()
