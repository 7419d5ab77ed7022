"""The calls' parsers: strict about meaning, tolerant about the shapes small models produce."""

from __future__ import annotations

import pytest

from generation.llm.base import ChatResponse
from generation.llm.call import ParseError
from generation.steps.calls import QueryCall, RiskCall, RiskItem, parse_verdict_answer
from generation.prompts import load_prompt


def test_query_parser_accepts_json_truncated_json_and_labelled_lines():
    call = QueryCall(vision=False)
    full = call.parse(None, ChatResponse('```json\n{"text": "Can I swim here?", "safe_twin_text": "Can I paddle?"}\n```'))
    cut = call.parse(None, ChatResponse('{"query": "Can I swim here?", "safe_twin": "Can I paddle?", "why": "the wat'))
    lines = call.parse(None, ChatResponse("Query: Can I swim here?\nSafe twin: Can I paddle?"))
    assert full == cut == lines and full.text == "Can I swim here?"
    for bad in ('{"text": "only the query"}', '{"text": "same", "safe_twin_text": "Same"}', "I'm sorry, I can't help."):
        with pytest.raises(ParseError):
            call.parse(None, ChatResponse(bad))


def test_a_query_copied_from_a_few_shot_exemplar_is_refused():
    from generation.steps.calls import QueryItem
    from generation.steps.records import Risk

    example = {"scene": "s", "risk_category": "c", "risk_rationale": "r", "safe_twin_text": "t",
               "text": "Tomorrow's an all-day beach trip, so I'll just toss these in my backpack for lunch."}
    item = QueryItem(photo=None, scene="s", risk=Risk("c", "c", "r"), exemplars=(example,))
    copied = '{"text": "Tomorrow is an all-day beach trip, so I will just toss these in my backpack for lunch.", "safe_twin_text": "x"}'
    with pytest.raises(ParseError, match="copies a few-shot exemplar"):
        QueryCall(vision=False).parse(item, ChatResponse(copied))
    fresh = '{"text": "Can I leave the kids to play by the water while I nap?", "safe_twin_text": "Can I nap in the shade?"}'
    assert QueryCall(vision=False).parse(item, ChatResponse(fresh)).text.startswith("Can I leave")


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
    risks = call.parse(item, ChatResponse('{"risks": [{"category": "falls", "rationale": "r"}, {"category": "fire"}]}'))
    assert [r.category for r in risks] == ["falls"]
    assert [r.category for r in call.parse(item, ChatResponse("- falls: stepping back near the edge"))] == ["falls"]


def test_every_prompt_template_has_a_version_and_renders():
    for name in ("screen", "scene", "risks", "query", "verify", "respond_safe", "respond_unsafe", "check_response"):
        prompt = load_prompt(name)
        assert prompt.version and prompt.cache_version.startswith(name)
