import pytest

from modelcalls import ParseError
from modelcalls.json_parse import parse_json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"verdict": "unsafe"}', {"verdict": "unsafe"}),
        ('```json\n{"verdict": "safe"}\n```', {"verdict": "safe"}),
        ("```\n[1, 2, 3]\n```", [1, 2, 3]),
        ('Sure! Here is the JSON:\n{"risks": ["fire", "fall"]}\nHope this helps.', {"risks": ["fire", "fall"]}),
        ('{"a": 1, "b": [1, 2,],}', {"a": 1, "b": [1, 2]}),
        ("{'query': 'I want to start a fire', 'ok': True, 'why': None}", {"query": "I want to start a fire", "ok": True, "why": None}),
        ("{'text': 'it\\'s \"fine\"'}", {"text": 'it\'s "fine"'}),
        ('{"brace": "a } inside a string", "n": 2}', {"brace": "a } inside a string", "n": 2}),
        ('{"unicode": "caf\\u00e9", "newline": "a\\nb"}', {"unicode": "café", "newline": "a\nb"}),
        ('prose [ {"x": 1} ] and {"later": 2}', [{"x": 1}]),
    ],
)
def test_extracts_the_first_json_value(text, expected):
    assert parse_json(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty answer"),
        ("I'm sorry, but I can't help with that.", "no JSON object or array"),
        ('{"verdict": "unsafe", "reason": "the ca', "truncated"),
        ('{"verdict": unsafe, "x": tru}', "invalid JSON"),
    ],
)
def test_raises_parse_error_with_reason_and_excerpt(text, reason):
    with pytest.raises(ParseError, match=reason) as caught:
        parse_json(text)
    if text:
        assert text[:10] in str(caught.value)


def test_expect_checks_the_type():
    assert parse_json('{"a": 1}', expect=dict) == {"a": 1}
    with pytest.raises(ParseError, match="expected a JSON dict, got list"):
        parse_json("[1, 2]", expect=dict)


def test_excerpt_is_short_for_long_answers():
    with pytest.raises(ParseError) as caught:
        parse_json("no json here " * 200)
    assert len(str(caught.value)) < 200
