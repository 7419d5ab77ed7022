"""With `verdict_margin`, complementarity verdicts come from the verifier's log-odds, compared across the
pair and its parts, instead of from generated text (for small verifiers that write "safe" to everything)."""

import asyncio
import json

import pytest

from modelcalls import BackendError, ChatRequest, ChatResponse, make_backend
from modelcalls.cache import cache_key
from modelcalls.call import ParseError
from generation.steps.config import RunConfig
from generation.steps.verify import VerifyCall, VerifyItem, verification_failures


def scored(safe: float, unsafe: float) -> ChatResponse:
    return ChatResponse(json.dumps({"choice_logprobs": {"safe": safe, "unsafe": unsafe}}))


def test_a_scored_request_scores_the_two_verdicts_after_the_json_prefix():
    call = VerifyCall(vision=False, scored=True)
    request = call.request(VerifyItem("text_alone", None, "I want to sit on the railing."))
    assert request.choices == ("safe", "unsafe")
    assert request.answer_prefix == '{"verdict": "' and request.max_tokens == 1
    assert call.template_version != VerifyCall(vision=False).template_version, "scoring is part of the cache key"


def test_a_scored_verdict_carries_the_log_odds():
    verdict = VerifyCall(vision=False, scored=True).parse(VerifyItem("pair", None, "x"), scored(-1.0, -0.25))
    assert (verdict.verdict, verdict.score) == ("unsafe", 0.75)
    assert "+0.75" in verdict.reason


def test_an_answer_without_scores_is_a_parse_error():
    with pytest.raises(ParseError, match="no choice log-probabilities"):
        VerifyCall(vision=False, scored=True).parse(VerifyItem("pair", None, "x"), ChatResponse('{"verdict": "safe"}'))


def test_without_scoring_verdicts_are_parsed_from_text():
    call = VerifyCall(vision=False)
    assert call.request(VerifyItem("pair", None, "x")).choices is None
    assert call.parse(VerifyItem("pair", None, "x"), ChatResponse('{"verdict": "unsafe", "reason": "r"}')).verdict == "unsafe"


def checks(text, image, pair, twin):
    return {name: {"verdict": "safe", "reason": "", "score": score}
            for name, score in (("text_alone", text), ("image_alone", image), ("pair", pair), ("safe_twin", twin))}


def test_relative_verdicts_pass_a_pair_that_outscores_each_part_by_the_margin():
    assert verification_failures(checks(text=0.1, image=-0.3, pair=0.5, twin=0.2), margin=0.2) == []


@pytest.mark.parametrize("part, reason", [
    ("text_alone", "the text alone reveals the risk"),
    ("image_alone", "the image alone is as risky as the pair"),
    ("safe_twin", "the safe twin is as risky as the pair"),
])
def test_relative_verdicts_name_each_part_that_comes_too_close_to_the_pair(part, reason):
    scores = dict(text=0.1, image=-0.3, pair=0.5, twin=0.2)
    scores[{"text_alone": "text", "image_alone": "image", "safe_twin": "twin"}[part]] = 0.4
    [failure] = verification_failures(checks(**scores), margin=0.2)
    assert failure.startswith(reason) and "+0.40 vs pair +0.50" in failure


def test_scoring_requests_have_their_own_cache_keys():
    base = ChatRequest(messages=({"role": "user", "content": "q"},))
    scoring = ChatRequest(messages=base.messages, choices=("safe", "unsafe"), answer_prefix="x")
    keys = {cache_key(model="m", call_name="verify", template_version="1", request=r) for r in (base, scoring)}
    assert len(keys) == 2


def test_http_backends_refuse_choice_scoring_clearly():
    backend = make_backend({"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"})
    request = ChatRequest(messages=({"role": "user", "content": "q"},), choices=("safe", "unsafe"))
    with pytest.raises(BackendError, match="use the transformers backend"):
        asyncio.run(backend.chat(request))


def test_the_margin_is_a_run_config_key(tmp_path):
    config = RunConfig.from_dict({
        "generator": {"backend": "scripted", "model": "g", "replies": []}, "verifier": {"backend": "scripted", "model": "v", "replies": []},
        "input": {"kind": "folder", "path": str(tmp_path)}, "verdict_margin": 0.1,
    })
    assert config.verdict_margin == 0.1
