"""With `verdict_margin`, complementarity verdicts come from the verifier's log-odds, compared across the
pair and its parts, instead of from generated text (for small verifiers that write "safe" to everything)."""

import asyncio
import json

import pytest

from generation.engine.config import RunConfig
from generation.steps.verify import VerifyCall, VerifyItem, verification_failures
from modelcalls import BackendError, ChatRequest, ChatResponse, make_backend
from modelcalls.cache import cache_key
from modelcalls.call import ParseError


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


SCORES = {"text_alone": 0.1, "image_alone": -0.4, "safe_twin": 0.2}


def scoring_verifier(request):
    """The fake model, except that verify requests are scored: log-odds per check, the pair's depending on
    the photo (so two pairs never share their scores)."""
    from tests.generation_pipeline.fake_model import respond, seen

    if request.name != "verify":
        return respond(request)
    assert request.choices == ("safe", "unsafe")
    data = seen(request)
    check = "image_alone" if not data.message else "text_alone" if not data.caption else \
        "safe_twin" if "afar" in data.message else "pair"
    score = SCORES.get(check, 0.5 + len(data.caption) / 100)
    return json.dumps({"choice_logprobs": {"safe": -1.0, "unsafe": round(-1.0 + score, 4)}})


def test_rows_in_margin_mode_store_the_measured_scores_and_the_margin(photo_folder, make_config, tmp_path):
    import pyarrow.parquet as pq

    import rms_dataset as rms
    from generation.release.validate import _check_verification, validate_release
    from generation.run import run

    role = {"backend": "scripted", "respond": "tests.generation_pipeline.test_logodds_verdicts:scoring_verifier",
            "supports_images": False}
    config = make_config(photo_folder(["a cliff edge at sunset", "a stove in a small flat"]), verdict_margin=0.25,
                         generator={**role, "model": "g"}, verifier={**role, "model": "v"})
    report = run(config, tmp_path / "run", show_progress=False)
    assert report["pairs"] == 2 and validate_release(report["release"]) == []
    rows = [row for paths in rms.find_shards(report["release"], rms.PAIRS).values() for p in paths
            for row in pq.read_table(p).to_pylist()]
    for row in rows:
        verification = row["verification"]
        assert verification["mode"] == "log_odds_margin" and verification["margin"] == 0.25
        assert {c: verification["scores"][c] for c in SCORES} == pytest.approx(SCORES)
        assert verification["scores"]["pair"] == pytest.approx(0.5 + len(row["scene"].split(". ")[0].removeprefix("Scene of ")) / 100)
        verdicts = [rms.VERDICT.int2str(verification[check]) for check in ("text_alone", "image_alone", "pair", "safe_twin")]
        assert verdicts == ["safe", "safe", "unsafe", "safe"]  # stored as ClassLabel ints
    assert rows[0]["verification"]["scores"]["pair"] != rows[1]["verification"]["scores"]["pair"]  # measured, not a constant
    claimed = {**rows[0]["verification"], "safe_twin": "safe", "scores": {**rows[0]["verification"]["scores"], "safe_twin": 0.9}}
    [problem] = _check_verification("pairs.parquet", 0, claimed)
    assert problem.field == "verification.safe_twin" and "contradicts the scores" in problem.message
