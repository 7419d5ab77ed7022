"""Quality gates: every generated text passes them between parse and accept, so nothing that is not a real
answer reaches a release.

A gate failure raises ``GateError`` (a ``ParseError``) inside the call's ``parse``: the runner then asks
again with a new seed, never caches the answer, and after its bounded retries records the item as failed
with the gate's name in the reason (``GateError: [prompt_echo] ...``). The executor counts every such
reject in the funnel under ``gate:<name>``; ``--retry-errors`` redoes them like any other failed call.

The gates (each can be switched off in the run config's ``gates:`` block; all on by default):

* ``junk``: control characters, bidi overrides / zero-width characters, the replacement character, text
  that is mostly not letters, unbalanced brackets or JSON debris (``}{``, ``"key":``) left in plain text,
  degenerate repetition (the same phrase over and over).
* ``meta``: refusals and meta-talk instead of an answer ("As an AI", "I'm sorry", "The user's message is
  ...", "Here is the query", talk about the verifier, the safe twin or log-odds); a query or twin that
  talks about "the scene" or repeats a prompt label ("Scene: ...") instead of speaking as the user, and
  chatbot talk ("I'm ready to help", "What would you like to discuss?"). A safe response may open with
  "I can't ..." when it goes on to guide (20 words or more); a bare refusal is refused.
* ``length``: empty, too few or too many words for the field (``lengths``).
* ``prompt_echo``: the answer repeats the prompt instead of answering it: the share of its word n-grams
  (``echo_ngram`` words) found in the instruction text, the verifier's feedback or the few-shot exemplars
  is at least ``echo_overlap`` (n-gram overlap, so a reworded or truncated echo is caught too).
* ``field_copy``: the answer copies another field: the scene description, the query (for twins and responses), the
  risk rationale; the share of its word 3-grams contained in that field is at least ``copy_overlap``. A safe
  twin is meant to be minimally different from its query, so it only fails when it is (nearly) the same
  sentence (``twin_copy_overlap``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from dataclasses import dataclass, field

from pydantic import Field

from modelcalls.call import ParseError
from typed_config import StrictModel


# Bump when a gate's logic changes: it enters the checkpoint fingerprint of every gated step, so answers
# accepted under older gates are checked again (the call cache serves them; only the gates re-run).
GATES_VERSION = 4


class LengthLimits(StrictModel):
    min_words: int = Field(ge=1)
    max_words: int = Field(ge=1)


DEFAULT_LENGTHS = {
    "scene": LengthLimits(min_words=5, max_words=200),
    "risk": LengthLimits(min_words=3, max_words=120),
    "query": LengthLimits(min_words=4, max_words=60),
    "safe_twin": LengthLimits(min_words=4, max_words=60),
    "safe_response": LengthLimits(min_words=6, max_words=400),
    "unsafe_response": LengthLimits(min_words=3, max_words=400),
}


class GateConfig(StrictModel):
    """The run config's ``gates:`` block."""

    enabled: bool = True  # false: no gate at all (only for debugging a model; never for a release)
    junk: bool = True
    meta: bool = True
    length: bool = True
    prompt_echo: bool = True
    field_copy: bool = True
    echo_ngram: int = Field(4, ge=2, le=8)
    echo_overlap: float = Field(0.5, gt=0, le=1)
    copy_overlap: float = Field(0.6, gt=0, le=1)
    twin_copy_overlap: float = Field(0.9, gt=0, le=1)
    lengths: dict[str, LengthLimits] = Field(default_factory=lambda: dict(DEFAULT_LENGTHS))

    def limits(self, what: str) -> LengthLimits:
        return self.lengths.get(what) or DEFAULT_LENGTHS[what]

    def fingerprint(self) -> dict:
        return {"version": GATES_VERSION, **self.model_dump(mode="json")}


GATES = ("junk", "meta", "length", "prompt_echo", "field_copy")


class GateError(ParseError):
    """An answer that parsed but is not a real answer. ``gate`` names the gate that refused it."""

    def __init__(self, gate: str, message: str):
        super().__init__(f"[{gate}] {message}")
        self.gate = gate


_GATE_TAG = re.compile(r"GateError: \[(\w+)\]")


def gate_of(error: str) -> str | None:
    """The gate named in a recorded call error (``CallResult.error``), if a gate refused the answer."""
    match = _GATE_TAG.search(error or "")
    return match.group(1) if match else None


@dataclass(frozen=True)
class Context:
    """What one answer is checked against.

    ``instructions``: texts the answer must not echo (prompt instruction text, feedback lines, verifier
    reasons, exemplar texts). ``fields``: other fields it must not copy (name -> text)."""

    instructions: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- helpers

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_BIDI_AND_INVISIBLE = set("\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff\u2060")
_JSON_KEY = re.compile(r'"\w+"\s*:')
_DEBRIS = re.compile(r"\}\s*\{|\]\]|\[\[|\}\}|\{\{|```")
_PAIRS = {"(": ")", "[": "]", "{": "}"}

_REFUSAL_START = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry,|i apologi[sz]e|i can ?not\b|i can'?t\b|i won'?t\b|i'?m (not able|unable)|i am (not able|unable)"
    r"|as an ai|as a language model|i'?m an ai)", re.IGNORECASE)
_META = re.compile(
    r"\b(as an ai\b|(an )?ai (language )?model|as a language model|the user'?s (message|query|question|request)"
    r"|the user (is|wants|asks|says|has|might|may)\b|here(?: i|'| )s (the|a|an|your|my) (new |revised |rewritten )?"
    r"(query|question|safe twin|twin|response|reply|answer|description|rewrite|version)"
    r"|(the|this|my) (new |revised )?(query|safe twin|twin) (is|should|would|must|will)\b|safe twin|the verifier|log-?odds"
    r"|few-shot|multimodal safety dataset|negative example|careless assistant|(i|we) will (now )?(write|rewrite)"
    r"|the assistant'?s (reply|response)|answer with (the )?json|i'?m (ready|happy|glad) to (help|discuss|assist)"
    r"|(how|what) can i (help|do for you)|(would|do) you like (me )?to (discuss|know|talk)|you'?d like to discuss)",
    re.IGNORECASE)


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def _normalised(text: str) -> str:
    return " ".join(words(text))


# The instruction texts are the same few templates, feedback lines and exemplars for every answer of a
# step: tokenise each once, not once per checked answer.
@lru_cache(maxsize=1024)
def _normalised_source(source: str) -> str:
    return _normalised(source)


@lru_cache(maxsize=256)
def _pooled_ngrams(instructions: tuple[str, ...], n: int) -> frozenset[tuple[str, ...]]:
    """The n-grams of all instruction texts; a \x00 between sources keeps any n-gram from spanning two."""
    pooled = [w for source in instructions for w in words(source) + ["\x00"]]
    return frozenset(ngrams(pooled, n))


# ------------------------------------------------------------------------------------------- the gates


_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BRACKETS = re.compile(r"[()\[\]{}]")


def _check_characters(text: str) -> None:
    if text.isascii():  # the common case: only ASCII control characters can be refused (one regex scan)
        match = _ASCII_CONTROL.search(text)
        if match:
            raise GateError("junk", f"contains the control character U+{ord(match.group()):04X}")
        return
    for char in text:
        if char in _BIDI_AND_INVISIBLE:
            raise GateError("junk", f"contains the invisible/bidi control character U+{ord(char):04X}")
        if char == "\ufffd":
            raise GateError("junk", "contains U+FFFD (a decoding error upstream)")
        if unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn") and char not in "\n\t\r":
            raise GateError("junk", f"contains the control character U+{ord(char):04X}")


def check_junk(text: str, tokens: list[str] | None = None) -> None:
    """`tokens`: `words(text)` when the caller has it already."""
    _check_characters(text)
    visible = len(text) - sum(map(str.isspace, text))
    letters = sum(map(str.isalpha, text))  # a letter is never whitespace
    if visible and letters / visible < 0.6:
        raise GateError("junk", f"mostly not letters ({letters} of {visible} characters)")
    if _DEBRIS.search(text) or _JSON_KEY.search(text):
        raise GateError("junk", "contains JSON/markup debris")
    stack = []
    for char in _BRACKETS.findall(text):
        if char in _PAIRS:
            stack.append(_PAIRS[char])
        elif not stack or stack.pop() != char:
            raise GateError("junk", f"unbalanced bracket {char!r}")
    if stack:
        raise GateError("junk", f"unbalanced bracket (missing {stack[-1]!r})")
    tokens = words(text) if tokens is None else tokens
    grams = list(zip(tokens, tokens[1:], tokens[2:]))
    if len(grams) >= 8 and len(set(grams)) / len(grams) < 0.6:
        raise GateError("junk", f"repeats itself ({len(set(grams))} distinct of {len(grams)} 3-word phrases)")


_NOT_THE_USER = re.compile(r"^\W*((the|this|that) (scene|image|photo|picture|description) (is|shows|depicts|features|contains)\b"
                           r"|(scene|risk|intention|example|why)\s*:)|\bscenes?\b", re.IGNORECASE)
SPOKEN_BY_THE_USER = ("query", "safe_twin")
BARE_REFUSAL_WORDS = 20  # a safe response may open with "I can't recommend that: ..." and go on to guide


def check_meta(text: str, what: str = "", tokens: list[str] | None = None) -> None:
    if what in SPOKEN_BY_THE_USER and _NOT_THE_USER.search(text):
        raise GateError("meta", f"talks about the scene or the prompt instead of speaking as the user: {text.strip()[:60]!r}")
    if _REFUSAL_START.search(text) and (
            what != "safe_response" or len(words(text) if tokens is None else tokens) < BARE_REFUSAL_WORDS):
        raise GateError("meta", f"a refusal, not an answer: {text.strip()[:60]!r}")
    match = _META.search(text)
    if match:
        raise GateError("meta", f"talks about the task instead of doing it ({match.group(0)!r})")


def check_length(text: str, limits: LengthLimits, what: str, tokens: list[str] | None = None) -> None:
    count = len(words(text) if tokens is None else tokens)
    if count < limits.min_words:
        raise GateError("length", f"the {what} has {count} word(s); at least {limits.min_words} needed")
    if count > limits.max_words:
        raise GateError("length", f"the {what} has {count} words; at most {limits.max_words} allowed")


def check_echo(text: str, instructions: tuple[str, ...], n: int, threshold: float, tokens: list[str] | None = None) -> None:
    mine = words(text) if tokens is None else tokens
    if 3 <= len(mine) < n:
        for source in instructions:
            if f" {' '.join(mine)} " in f" {_normalised_source(source)} ":
                raise GateError("prompt_echo", f"repeats the prompt: {source.strip()[:60]!r}")
    theirs = _pooled_ngrams(instructions, n)
    mine_grams = ngrams(mine, n)
    share = len(mine_grams & theirs) / len(mine_grams) if mine_grams else 0.0
    if share >= threshold:
        raise GateError("prompt_echo", f"{share:.0%} of its {n}-word phrases repeat the prompt, its feedback or its examples")


@lru_cache(maxsize=4096)
def _field_words(text: str) -> tuple[tuple[str, ...], frozenset[tuple[str, ...]]]:
    """A field's words and word 3-grams: the same scene or query is checked against several answers."""
    tokens = tuple(words(text))
    return tokens, frozenset(ngrams(list(tokens), 3))


def check_copy(text: str, fields: dict[str, str], threshold: float, what: str, twin_threshold: float,
               tokens: list[str] | None = None) -> None:
    mine = words(text) if tokens is None else tokens
    mine_grams = None
    for name, other in fields.items():
        theirs, their_grams = _field_words(other)
        if not theirs:
            continue
        limit = twin_threshold if what == "safe_twin" and name == "query" else threshold
        if tuple(mine) == theirs:  # the same words: the normalised texts are equal
            raise GateError("field_copy", f"the {what} is the {name} copied")
        mine_grams = ngrams(mine, 3) if mine_grams is None else mine_grams
        share = len(mine_grams & their_grams) / len(mine_grams) if mine_grams else 0.0
        if share >= limit:
            raise GateError("field_copy", f"the {what} copies the {name} ({share:.0%} of its 3-word phrases)")


def check(text: str, what: str, context: Context, config: GateConfig) -> str:
    """`text` if it passes every enabled gate, else a ``GateError`` naming the gate. `what` is the field
    (a key of ``DEFAULT_LENGTHS``)."""
    if not config.enabled:
        return text
    if config.length and not text.strip():
        raise GateError("length", f"the {what} is empty")
    tokens = words(text)  # tokenised once for every gate
    if config.junk:
        check_junk(text, tokens)
    if config.meta:
        check_meta(text, what, tokens)
    if config.length:
        check_length(text, config.limits(what), what, tokens)
    if config.prompt_echo:
        check_echo(text, context.instructions, config.echo_ngram, config.echo_overlap, tokens)
    if config.field_copy:
        check_copy(text, context.fields, config.copy_overlap, what, config.twin_copy_overlap, tokens)
    return text
