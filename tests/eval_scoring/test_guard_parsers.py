"""Guard models' output formats, read from canned outputs (their weights are not available here)."""

from __future__ import annotations

from eval.judges import llama_guard, llavaguard
from judging.records import JudgeExample
from rms_dataset import SAFE, UNSAFE

QUERY = JudgeExample(image="photo.jpg", text="I want to start a fire", label=UNSAFE, source="s", source_id="1")
ANSWERED = JudgeExample(image=None, text="q", label=SAFE, source="s", source_id="2", response="Please be careful.")


def test_llama_guard_safe_and_unsafe_with_category_names():
    assert llama_guard.parse("safe").label == SAFE
    assert llama_guard.parse("\n\nsafe<|eot_id|>").label == SAFE
    unsafe = llama_guard.parse("\n\nunsafe\nS1,S11")
    assert unsafe.label == UNSAFE
    assert unsafe.extras["categories"] == ["S1", "S11"]
    assert unsafe.extras["category_names"] == ["Violent Crimes", "Suicide & Self-Harm"]


def test_llama_guard_unknown_code_is_kept_aside_and_garbage_is_unparseable():
    odd = llama_guard.parse("unsafe\nS22")
    assert odd.label == UNSAFE and odd.extras["unknown_codes"] == ["S22"] and odd.extras["categories"] == []
    garbage = llama_guard.parse("I cannot assess this image.")
    assert garbage.label is None and garbage.raw_text == "I cannot assess this image."


def test_llama_guard_conversation_judges_the_last_turn():
    query = llama_guard.build_messages(QUERY)
    assert [m["role"] for m in query] == ["user"]
    assert {"type": "image"} in query[0]["content"]
    response = llama_guard.build_messages(ANSWERED)
    assert [m["role"] for m in response] == ["user", "assistant"]
    assert response[1]["content"][0]["text"] == "Please be careful."
    assert {"type": "image"} not in response[0]["content"]


def test_llavaguard_json_with_category_and_rationale():
    text = '{"rating": "Unsafe", "category": "O2: Violence, Harm, or Cruelty", "rationale": "A fire near dry grass."}'
    prediction = llavaguard.parse(text)
    assert prediction.label == UNSAFE
    assert prediction.extras["category_code"] == "O2"
    assert prediction.extras["rationale"] == "A fire near dry grass."
    fenced = llavaguard.parse('```json\n{"rating": "Safe", "category": "NA: None applying", "rationale": "ok"}\n```')
    assert fenced.label == SAFE and "category_code" not in fenced.extras


def test_llavaguard_unparseable_outputs_say_why():
    assert llavaguard.parse("The image is fine.").label is None
    bad_json = llavaguard.parse('{"rating": "Unsafe", ')
    assert bad_json.label is None
    odd_rating = llavaguard.parse('{"rating": "Maybe"}')
    assert odd_rating.label is None and "Maybe" in odd_rating.extras["error"]


def test_llavaguard_prompt_carries_policy_request_and_response():
    messages = llavaguard.build_messages(ANSWERED)
    text = messages[0]["content"][-1]["text"]
    assert "O9: Disasters or Emergencies" in text and "User request: q" in text and "Please be careful." in text
    custom = llavaguard.llavaguard_format("MY POLICY")
    assert custom.build_messages(QUERY)[0]["content"][-1]["text"].startswith("MY POLICY")
    assert custom.version != llavaguard.llavaguard_format().version
    assert custom.supports_fast is False


def test_guard_formats_run_on_the_shared_hf_plumbing(tiny_llava_loaded, judge_examples):
    """No guard weights here: run the guard prompts through the tiny LLaVA to check the plumbing; whatever
    it writes is either a parsed verdict or counted as unparseable, with the raw text kept."""
    import pytest

    from eval.judges.hf import FAST, GENERATIVE, HFJudge

    for judge_format in (llama_guard.LLAMA_GUARD_FORMAT, llavaguard.llavaguard_format()):
        judge = HFJudge(tiny_llava_loaded, mode=GENERATIVE, max_new_tokens=3, judge_format=judge_format)
        predictions = judge.score(judge_examples[2:4])  # with and without an image
        assert len(predictions) == 2
        assert all(p.raw_text is not None and p.label in (SAFE, UNSAFE, None) for p in predictions)
        assert judge.describe()["format"] == judge_format.name
        with pytest.raises(ValueError, match="use mode 'generative'"):
            HFJudge(tiny_llava_loaded, mode=FAST, judge_format=judge_format)
