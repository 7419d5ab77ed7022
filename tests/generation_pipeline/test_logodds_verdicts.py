"""With `verdict_threshold`, complementarity verdicts come from the verifier's log-odds, not its text."""

import json

import pytest

from generation.llm import BackendError, ChatRequest, ChatResponse, make_backend
from generation.llm.cache import cache_key
from generation.llm.call import ParseError
from generation.steps.calls import VerifyCall, VerifyItem
from generation.steps.config import RunConfig


def scored(safe: float, unsafe: float) -> ChatResponse:
    return ChatResponse(json.dumps({"choice_logprobs": {"safe": safe, "unsafe": unsafe}}))


def test_the_request_scores_the_two_verdicts_after_the_json_prefix():
    call = VerifyCall(vision=False, verdict_threshold=0.6)
    request = call.request(VerifyItem("text_alone", None, "I want to sit on the railing."))
    assert request.choices == ("safe", "unsafe")
    assert request.answer_prefix == '{"verdict": "' and request.max_tokens == 1
    assert call.template_version != VerifyCall(vision=False).template_version, "the threshold is part of the cache key"


@pytest.mark.parametrize("safe, unsafe, verdict", [(-1.0, -0.2, "unsafe"), (-1.0, -0.5, "safe"), (-0.3, -0.9, "safe")])
def test_unsafe_only_when_the_log_odds_exceed_the_threshold(safe, unsafe, verdict):
    call = VerifyCall(vision=False, verdict_threshold=0.6)
    result = call.parse(VerifyItem("pair", None, "x"), scored(safe, unsafe))
    assert result.verdict == verdict
    assert "threshold +0.60" in result.reason


def test_an_answer_without_scores_is_a_parse_error():
    call = VerifyCall(vision=False, verdict_threshold=0.0)
    with pytest.raises(ParseError, match="no choice log-probabilities"):
        call.parse(VerifyItem("pair", None, "x"), ChatResponse('{"verdict": "safe"}'))


def test_without_a_threshold_verdicts_are_parsed_from_text():
    call = VerifyCall(vision=False)
    assert call.request(VerifyItem("pair", None, "x")).choices is None
    assert call.parse(VerifyItem("pair", None, "x"), ChatResponse('{"verdict": "unsafe", "reason": "r"}')).verdict == "unsafe"


def test_scoring_requests_have_their_own_cache_keys():
    base = ChatRequest(messages=({"role": "user", "content": "q"},))
    scoring = ChatRequest(messages=base.messages, choices=("safe", "unsafe"), answer_prefix="x")
    keys = {cache_key(model="m", call_name="verify", template_version="1", request=r) for r in (base, scoring)}
    assert len(keys) == 2


def test_http_backends_refuse_choice_scoring_clearly():
    backend = make_backend({"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"})
    request = ChatRequest(messages=({"role": "user", "content": "q"},), choices=("safe", "unsafe"))
    import asyncio

    with pytest.raises(BackendError, match="use the transformers backend"):
        asyncio.run(backend.chat(request))


def test_the_threshold_is_a_run_config_key(tmp_path):
    config = RunConfig.from_dict({
        "generator": {"backend": "scripted", "model": "g"}, "verifier": {"backend": "scripted", "model": "v"},
        "input": {"kind": "folder", "path": str(tmp_path)}, "verdict_threshold": 0.5,
    })
    assert config.verdict_threshold == 0.5
