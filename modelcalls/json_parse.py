"""``parse_json(text)``: the first JSON object or array in a model's answer, tolerating what models do.

Tolerated: code fences (```json ... ```), prose before/after, trailing commas, single-quoted strings,
Python literals ``True``/``False``/``None``, comments-free relaxed JSON. Anything else (no JSON at all,
unbalanced brackets from a truncated answer, garbage inside) raises ``ParseError`` with a short excerpt.
"""

from __future__ import annotations

import json
import re

from modelcalls.call import ParseError

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_EXCERPT = 80
_LITERALS = {"True": "true", "False": "false", "None": "null"}


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "...")


def _balanced_span(text: str, start: int) -> int | None:
    """Index just past the bracket closing the one at ``start``, skipping strings; None if unbalanced."""
    stack = []
    quote = None
    i = start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]":
            if not stack or stack.pop() != char:
                return None
            if not stack:
                return i + 1
        i += 1
    return None


def _to_strict_json(candidate: str) -> str:
    """Rewrite relaxed JSON (single quotes, trailing commas, Python literals) as strict JSON."""
    out: list[str] = []
    i = 0
    n = len(candidate)
    while i < n:
        char = candidate[i]
        if char in "\"'":
            quote = char
            j = i + 1
            chars = []
            while j < n and candidate[j] != quote:
                if candidate[j] == "\\" and j + 1 < n:
                    escaped = candidate[j + 1]
                    chars.append(escaped if escaped in "'\"" else "\\" + escaped)
                    j += 2
                    continue
                chars.append(candidate[j])
                j += 1
            raw = "".join(chars)
            try:  # decode the JSON escapes (\n, \u00e9) the model wrote, then re-encode
                value = json.loads('"' + raw.replace('"', '\\"') + '"')
            except json.JSONDecodeError:
                value = raw
            out.append(json.dumps(value, ensure_ascii=False))
            i = j + 1
            continue
        if char == ",":
            k = i + 1
            while k < n and candidate[k].isspace():
                k += 1
            if k < n and candidate[k] in "}]":
                i += 1  # trailing comma
                continue
        if char.isalpha():
            k = i
            while k < n and (candidate[k].isalnum() or candidate[k] == "_"):
                k += 1
            word = candidate[i:k]
            out.append(_LITERALS.get(word, word))
            i = k
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _candidates(text: str):
    for match in _FENCE.finditer(text):
        yield match.group(1)
    yield text


def parse_json(text: str, *, expect: type | None = None):
    """The first JSON object/array in ``text``; ``expect=dict`` or ``expect=list`` also checks its type."""
    if text is None or not text.strip():
        raise ParseError("empty answer, expected JSON")
    problem = None
    for candidate in _candidates(text):
        starts = [i for i in (candidate.find("{"), candidate.find("[")) if i >= 0]
        if not starts:
            continue
        start = min(starts)
        end = _balanced_span(candidate, start)
        if end is None:
            problem = f"unbalanced or truncated JSON starting {_excerpt(candidate[start:])}"
            continue
        span = candidate[start:end]
        try:
            value = json.loads(span)
        except json.JSONDecodeError:
            try:
                value = json.loads(_to_strict_json(span))
            except json.JSONDecodeError as error:
                problem = f"invalid JSON ({error.msg}) in {_excerpt(span)}"
                continue
        if expect is not None and not isinstance(value, expect):
            raise ParseError(f"expected a JSON {expect.__name__}, got {type(value).__name__}: {_excerpt(span)}")
        return value
    raise ParseError(problem or f"no JSON object or array in the answer: {_excerpt(text)}")
