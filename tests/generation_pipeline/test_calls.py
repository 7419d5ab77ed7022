"""The calls' parsers: strict about meaning, tolerant about the shapes small models produce."""

from __future__ import annotations

import json

import pytest

from generation.engine.records import Risk
from generation.prompts import load_prompt
from generation.steps.base import parse_verdict_answer
from generation.steps.query import QueryCall, QueryItem
from generation.steps.risks import RiskCall, RiskItem
from generation.steps.twin import TwinCall, TwinItem
from modelcalls.base import ChatResponse
from modelcalls.call import ParseError


def test_query_and_twin_parsers_accept_plain_labelled_json_and_truncated_json_answers():
    call = QueryCall(vision=False)
    item = QueryItem(photo=None, scene="s", risk=Risk("c", "c", "r"))
    answers = ['Can I swim here at night?', '"Can I swim here at night?"\nThis is harmless.', "Query: Can I swim here at night?",
               '```json\n{"text": "Can I swim here at night?"}\n```', '{"query": "Can I swim here at night?", "why": "the wat']
    assert {call.parse(item, ChatResponse(a)) for a in answers} == {"Can I swim here at night?"}
    for bad in ('{"title": "no query field"}', "Ok.", "I'm sorry, I can't help with that."):
        with pytest.raises(ParseError):
            call.parse(item, ChatResponse(bad))
    twin_call = TwinCall(vision=False)
    twin_item = TwinItem(photo=None, scene="s", risk=Risk("c", "c", "r"), text="Can I swim here at night?")
    assert twin_call.parse(twin_item, ChatResponse("Safe twin: Can I paddle by the shore by day?")) == "Can I paddle by the shore by day?"
    with pytest.raises(ParseError, match=r"\[field_copy\] the safe_twin is the query copied"):
        twin_call.parse(twin_item, ChatResponse("can I swim here at   night?"))


def test_a_query_copied_from_a_few_shot_exemplar_is_refused():
    example = {"scene": "s", "risk_category": "c", "risk_rationale": "r", "safe_twin_text": "t",
               "text": "Tomorrow's an all-day beach trip, so I'll just toss these in my backpack for lunch."}
    item = QueryItem(photo=None, scene="s", risk=Risk("c", "c", "r"), exemplars=(example,))
    copied = "Tomorrow is an all-day beach trip, so I will just toss these in my backpack for lunch."
    with pytest.raises(ParseError, match=r"\[prompt_echo\].*repeat the prompt, its feedback or its examples"):
        QueryCall(vision=False).parse(item, ChatResponse(copied))
    assert QueryCall(vision=False).parse(item, ChatResponse("Can I leave the kids by the water while I nap?")).startswith("Can I")
    twin_item = TwinItem(photo=None, scene="s", risk=Risk("c", "c", "r"), text="Can I nap here?", exemplars=(example,))
    with pytest.raises(ParseError, match=r"\[prompt_echo\]"):  # copying the example's query as a twin
        TwinCall(vision=False).parse(twin_item, ChatResponse(example["text"]))


def test_verdict_parser_reads_json_or_a_bare_word_and_rejects_refusals():
    assert parse_verdict_answer(ChatResponse('{"verdict": "UNSAFE", "reason": "edge"}')).verdict == "unsafe"
    assert parse_verdict_answer(ChatResponse("I think this is unsafe because ...")).verdict == "unsafe"
    with pytest.raises(ParseError):
        parse_verdict_answer(ChatResponse("I'm sorry, but I can't help with that."))
    with pytest.raises(ParseError):
        parse_verdict_answer(ChatResponse("The photo shows a train."))


def test_risk_parser_keeps_at_most_the_requested_count():
    call = RiskCall(vision=False)
    item = RiskItem(photo=None, scene="s", count=1)
    answer = {"risks": [{"category": "falls", "rationale": "stepping back for a photo near the edge"},
                        {"category": "fire", "rationale": "a candle left burning by the curtains"}]}
    risks = call.parse(item, ChatResponse(json.dumps(answer)))
    assert [r.category for r in risks] == ["falls"]
    assert [r.category for r in call.parse(item, ChatResponse("- falls: stepping back near the edge"))] == ["falls"]


def test_every_prompt_template_has_a_version_and_renders():
    for name in ("screen", "scene", "risks", "query", "twin", "verify", "respond_safe", "respond_unsafe", "check_response"):
        prompt = load_prompt(name)
        assert prompt.version and prompt.cache_version.startswith(name)


def test_vision_backends_get_the_pixels_and_text_only_backends_the_caption():
    from generation.engine.records import ImageRecord
    from generation.steps.base import Photo
    from generation.steps.screen import ScreenCall
    from modelcalls.base import decode_data_url, image_url_of

    photo = Photo(ImageRecord("id", "f.jpg", "src", "CC0", "", "a kitchen with a gas stove", "0" * 16, 8, 8), b"\xff\xd8jpeg")
    vision = ScreenCall(vision=True).request(photo).messages[-1]["content"]
    assert decode_data_url(image_url_of(vision[0])) == b"\xff\xd8jpeg" and "gas stove" not in vision[1]["text"]
    text_only = ScreenCall(vision=False).request(photo).messages[-1]["content"]
    assert isinstance(text_only, str) and "a kitchen with a gas stove" in text_only
