"""What every pipeline step is made of: a template-rendered model call (prompt + parse + quality gates) and
the step contract the executor runs.

A model step says which items it takes from each subject (an image or a candidate pair), which call it makes
(and for which role: generator or verifier), and how the answers are accepted: ``Kept`` (the subjects that go
on), ``Dropped`` (a reject with its reason) or ``Retry`` (inside ``Rewrite``: write the query again with this
feedback). Steps never run calls, read checkpoints or count the funnel: the executor does (engine/executor.py).

Text-only backends get the manifest description as a caption wherever vision backends see the pixels.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from generation.engine.records import ImageRecord
from generation.prompts import Prompt, load_prompt
from modelcalls.base import ChatRequest, ChatResponse, image_part
from modelcalls.call import ModelCall, ParseError
from modelcalls.json_parse import parse_json
from rms_dataset import SAFE, UNSAFE

from . import gates

GENERATOR = "generator"
VERIFIER = "verifier"

_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|i can(no|')t|i cannot|i won'?t|as an ai)", re.IGNORECASE)
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


@dataclass(frozen=True)
class Photo:
    record: ImageRecord
    source: bytes | Path = field(repr=False)  # the JPEG, or its file (read only when a vision call sends it)

    @property
    def jpeg(self) -> bytes:
        return self.source if isinstance(self.source, bytes) else self.source.read_bytes()

    @property
    def caption(self) -> str:
        return self.record.description or f"a photo ({self.record.filename})"


@dataclass(frozen=True)
class Verdict:
    verdict: str  # "safe" | "unsafe"
    reason: str = ""
    score: float | None = None  # log P(unsafe) - log P(safe), when read from log-probabilities

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "reason": self.reason, **({"score": self.score} if self.score is not None else {})}


class TemplateCall(ModelCall):
    """A call rendered from ``generation/prompts/<prompt_name>.yaml``. Subclasses give ``variables(item)``,
    ``photo(item)`` (or None) and ``parse``; calls that write free text pass it through ``self.gated``.

    ``template_version`` (part of the call-cache key) is the prompt's version, a hash of its text (an edit
    never reuses answers to the old text) and ``answer_digest``: a hash of what else determines the answer
    beyond the model id (the role's revision, dtype, ...; see engine/fingerprint.py)."""

    prompt_name = ""

    def __init__(self, *, vision: bool, max_tokens: int | None = None, temperature: float = 0.0,
                 gate_config: gates.GateConfig | None = None, answer_digest: str = ""):
        self.vision = vision
        self.prompt: Prompt = load_prompt(self.prompt_name)
        self.name = self.prompt_name
        self.template_version = "+".join(part for part in (self.prompt.cache_version, self.prompt.digest[:12], answer_digest) if part)
        self.max_tokens = max_tokens or self.prompt.max_tokens
        self.temperature = temperature
        self.gate_config = gate_config or gates.GateConfig()

    def variables(self, item) -> dict[str, Any]:
        raise NotImplementedError

    def photo(self, item) -> Photo | None:
        return None

    def request(self, item) -> ChatRequest:
        photo = self.photo(item)
        caption = photo.caption if photo is not None and not self.vision else None
        system, user = self.prompt.render(caption=caption, **self.variables(item))
        content: Any = user
        if photo is not None and self.vision:
            content = [image_part(photo.jpeg), {"type": "text", "text": user}]
        messages = ({"role": "system", "content": system}, {"role": "user", "content": content})
        return ChatRequest(messages=messages, temperature=self.temperature, max_tokens=self.max_tokens)

    # ---------------------------------------------------------------------------------------- gates

    def echo_sources(self, item) -> tuple[str, ...]:
        """Texts an answer must not echo: the template's instruction text (variables left out: the scene or
        the query are data, checked by the copy gate) plus, per call, feedback lines and exemplar texts."""
        static = [_JINJA.sub(" ", self.prompt.system), _JINJA.sub(" ", self.prompt.user)]
        return tuple(static) + tuple(getattr(item, "feedback", ())) + tuple(
            example.get(key, "") for example in getattr(item, "exemplars", ()) for key in ("text", "safe_twin_text", "scene")
        )

    def copy_sources(self, item) -> dict[str, str]:
        """Other fields an answer must not copy (name -> text)."""
        return {}

    def gated(self, text: str, item, what: str) -> str:
        context = gates.Context(self.echo_sources(item), self.copy_sources(item))
        return gates.check(text, what, context, self.gate_config)


# ------------------------------------------------------------------------------------------ parsers


def non_empty(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise ParseError(f"empty {what}")
    return text


def json_or_text(response: ChatResponse, key: str) -> str:
    """The `key` field of a JSON answer, or the plain answer when the model wrote no JSON."""
    try:
        data = parse_json(response.text, expect=dict)
    except ParseError:
        if "{" in response.text:
            raise
        return non_empty(response.text, key)
    value = data.get(key)
    if not isinstance(value, str):
        raise ParseError(f"the JSON answer has no string field {key!r} (keys: {sorted(data)})")
    return non_empty(value, key)


def parse_verdict_answer(response: ChatResponse) -> Verdict:
    """`{"verdict": "safe"|"unsafe", "reason": ...}`, or (small models) the first bare safe/unsafe word."""
    text = response.text
    try:
        data = parse_json(text, expect=dict)
        verdict = str(data.get("verdict", "")).strip().lower()
        if verdict in (SAFE, UNSAFE):
            return Verdict(verdict, str(data.get("reason", "")).strip())
    except ParseError:
        pass
    if _REFUSAL.match(text):
        raise ParseError(f"the verifier refused to answer: {text.strip()[:80]!r}")
    match = re.search(r"\b(unsafe|safe)\b", text.lower())
    if not match:
        raise ParseError(f"no safe/unsafe verdict in the answer {text.strip()[:80]!r}")
    return Verdict(match.group(1), text.strip()[:200])


_LABEL = re.compile(r"^\s*(?:\*\*)?(?:user\s+)?(?:query|question|safe\s+twin|twin|text)(?:\*\*)?\s*:\s*", re.IGNORECASE)
_JSON_STRING_FIELD = re.compile(r'"(\w+)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def parse_sentence(response: ChatResponse, keys: tuple[str, ...], what: str) -> str:
    """One user sentence from an answer: a JSON field named in `keys` (complete fields of a JSON answer cut
    off by the token limit count), else the first non-empty line without a `Query:`-style label or quotes."""
    text = response.text.strip()
    if text.startswith("{") or text.startswith("```"):
        fields = {key.lower(): value for key, value in _JSON_STRING_FIELD.findall(text)}
        value = next((fields[key] for key in keys if fields.get(key, "").strip()), "")
        if not value:
            raise ParseError(f"no {what} in the JSON answer (fields: {sorted(fields)})")
        try:
            value = json.loads(f'"{value}"')
        except ValueError:
            pass
    else:
        value = next((line for line in text.splitlines() if line.strip()), "")
    value = _LABEL.sub("", value).strip().strip('"').strip()
    if len(value.split()) < 3:
        raise ParseError(f"the {what} is missing or too short: {value!r}")
    return value


# ------------------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Kept:
    """The subjects that go on to the next step (usually the one that came in; risks fans out)."""

    subjects: tuple


@dataclass(frozen=True)
class Dropped:
    """A reject: `reason` for rejects.jsonl, `cause` a short label counted in the funnel."""

    reason: str
    cause: str


@dataclass(frozen=True)
class Retry:
    """The verifier's reasons to write the query again (only inside ``Rewrite``)."""

    failures: tuple[str, ...]


Outcome = Kept | Dropped | Retry


class ModelStep:
    """One model call over the subjects that reach it. Subclasses set the class attributes and give
    ``make_call``, ``work`` and ``accept``; ``params`` names the run settings (beyond the call itself) that
    determine the step's answers: they enter its checkpoint fingerprint."""

    name: ClassVar[str]  # checkpoint file and funnel row
    stage: ClassVar[str]  # the stage recorded in its rejects
    role: ClassVar[str] = GENERATOR
    failure: ClassVar[str]  # reject reason prefix when the call failed ("scene call failed")

    def enabled(self, config) -> bool:
        return True

    def setup(self, config) -> None:
        """Reset per-run state (called once per run, before the first subject)."""

    def params(self, config) -> dict[str, Any]:
        return {}

    def make_call(self, config, vision: bool, answer_digest: str) -> TemplateCall:
        raise NotImplementedError

    def chunk_size(self, config) -> int | None:
        """Subjects per round (None: all at once). A step whose prompt depends on earlier answers (the
        coverage sampler) runs in rounds."""
        return None

    def work(self, subject, state) -> list[tuple[str, Any]]:
        """(checkpoint key, call item) pairs for one subject. Subjects may share a key (one call serves both)."""
        raise NotImplementedError

    def work_for(self, subjects: list, state) -> list[list[tuple[str, Any]]]:
        return [self.work(subject, state) for subject in subjects]

    def encode(self, output) -> Any:
        """The call's output as JSON for the checkpoint."""
        return output

    def accept(self, subject, answers: list, state) -> Outcome:
        raise NotImplementedError


def tokens(config, call_class: type[TemplateCall]) -> int | None:
    return config.max_tokens.get(call_class.prompt_name)
