"""The pipeline's model calls (screen, scene, risks, query, verify, respond, check_response): each is a
`ModelCall` = prompt (a versioned template in `generation/prompts/`) + parse. Backends that see pixels get
the photo; text-only backends get the manifest description as a caption instead."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from modelcalls.base import ChatRequest, ChatResponse, image_part
from modelcalls.call import ModelCall, ParseError
from modelcalls.json_parse import parse_json
from generation.prompts import Prompt, load_prompt
from rms_dataset import SAFE, UNSAFE

from .dedup import jaccard, shingles
from .records import ImageRecord, Risk

_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|i can(no|')t|i cannot|i won'?t|as an ai)", re.IGNORECASE)


@dataclass(frozen=True)
class Photo:
    record: ImageRecord
    jpeg: bytes = field(repr=False)

    @property
    def caption(self) -> str:
        return self.record.description or f"a photo ({self.record.filename})"


@dataclass(frozen=True)
class Verdict:
    verdict: str  # "safe" | "unsafe"
    reason: str = ""
    score: float | None = None  # log P(unsafe) - log P(safe), when read from log-probabilities


class TemplateCall(ModelCall):
    """A call rendered from `generation/prompts/<prompt_name>.yaml`. Subclasses give `variables(item)`,
    `photo(item)` (or None) and `parse`."""

    prompt_name = ""

    def __init__(self, *, vision: bool, max_tokens: int | None = None, temperature: float = 0.0):
        self.vision = vision
        self.prompt: Prompt = load_prompt(self.prompt_name)
        self.name = self.prompt_name
        self.template_version = self.prompt.cache_version
        self.max_tokens = max_tokens or self.prompt.max_tokens
        self.temperature = temperature

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


def _non_empty(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise ParseError(f"empty {what}")
    return text


def _json_or_text(response: ChatResponse, key: str) -> str:
    """The `key` field of a JSON answer, or the plain answer when the model wrote no JSON."""
    try:
        data = parse_json(response.text, expect=dict)
    except ParseError:
        if "{" in response.text:
            raise
        return _non_empty(response.text, key)
    value = data.get(key)
    if not isinstance(value, str):
        raise ParseError(f"the JSON answer has no string field {key!r} (keys: {sorted(data)})")
    return _non_empty(value, key)


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


# ------------------------------------------------------------------------------------------- the calls


class ScreenCall(TemplateCall):
    """Step 2: is the photo safe on its own? item: Photo -> Verdict."""

    prompt_name = "screen"

    def variables(self, item: Photo) -> dict:
        return {}

    def photo(self, item: Photo) -> Photo:
        return item

    def parse(self, item: Photo, response: ChatResponse) -> Verdict:
        return parse_verdict_answer(response)


class SceneCall(TemplateCall):
    """Step 3: what the photo shows and affords. item: Photo -> str."""

    prompt_name = "scene"

    def variables(self, item: Photo) -> dict:
        return {}

    def photo(self, item: Photo) -> Photo:
        return item

    def parse(self, item: Photo, response: ChatResponse) -> str:
        return _json_or_text(response, "scene")


@dataclass(frozen=True)
class RiskItem:
    photo: Photo
    scene: str
    count: int
    prefer: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()


_RISK_LINE = re.compile(r"^\s*(?:[-*\d.)]+\s*)?([A-Za-z][\w /-]{1,40}?)\s*[:|-]\s*(.{10,})$")


class RiskCall(TemplateCall):
    """Step 4: hidden risks the scene affords. item: RiskItem -> list[Risk] (free-form labels)."""

    prompt_name = "risks"

    def variables(self, item: RiskItem) -> dict:
        return {"scene": item.scene, "count": item.count, "prefer": list(item.prefer), "avoid": list(item.avoid)}

    def photo(self, item: RiskItem) -> Photo:
        return item.photo

    def parse(self, item: RiskItem, response: ChatResponse) -> list[Risk]:
        try:
            data = parse_json(response.text)
        except ParseError:
            return self._parse_lines(response.text)
        entries = data.get("risks") if isinstance(data, dict) else data
        if isinstance(data, dict) and entries is None and "category" in data:
            entries = [data]
        if not isinstance(entries, list):
            raise ParseError("expected {'risks': [...]} in the answer")
        risks = []
        for entry in entries:
            if not isinstance(entry, dict) or not str(entry.get("category", "")).strip():
                continue
            rationale = str(entry.get("rationale", "")).strip()
            risks.append(Risk(str(entry["category"]).strip(), str(entry.get("subcategory", "")).strip() or str(entry["category"]).strip(),
                              rationale, str(entry.get("intention", "")).strip()))
        if not risks:
            raise ParseError("the answer names no risk with a category")
        return risks[: item.count]

    @staticmethod
    def _parse_lines(text: str) -> list[Risk]:
        """Small models often answer `- fire: lighting a candle near curtains` lines instead of JSON."""
        risks = []
        for line in text.splitlines():
            match = _RISK_LINE.match(line)
            if match:
                label, rationale = match.group(1).strip(), match.group(2).strip()
                risks.append(Risk(label, label, rationale, ""))
        if not risks:
            raise ParseError(f"no risk in the answer {text.strip()[:80]!r}")
        return risks


@dataclass(frozen=True)
class QueryItem:
    photo: Photo
    scene: str
    risk: Risk
    feedback: tuple[str, ...] = ()
    exemplars: tuple[dict, ...] = ()


@dataclass(frozen=True)
class TwinItem:
    photo: Photo
    scene: str
    risk: Risk
    text: str  # the query whose safe twin is wanted
    feedback: tuple[str, ...] = ()
    exemplars: tuple[dict, ...] = ()


_LABEL = re.compile(r"^\s*(?:\*\*)?(?:user\s+)?(?:query|question|safe\s+twin|twin|text)(?:\*\*)?\s*:\s*", re.IGNORECASE)
_JSON_STRING_FIELD = re.compile(r'"(\w+)"\s*:\s*"((?:[^"\\]|\\.)*)"')
_QUERY_KEYS = ("text", "query", "user_query", "question")
_TWIN_KEYS = ("safe_twin_text", "safe_twin", "twin", "safe_query")
EXEMPLAR_COPY_THRESHOLD = 0.5  # word 3-shingle Jaccard with an exemplar's sentence above which it is a copy


def parse_sentence(response: ChatResponse, keys: tuple[str, ...], what: str) -> str:
    """One user sentence from an answer: a JSON field named in `keys` (complete fields of a JSON answer cut
    off by the token limit count), else the first non-empty line without a `Query:`-style label or quotes."""
    text = response.text.strip()
    if _REFUSAL.match(text):
        raise ParseError(f"the model refused to write the {what}: {text[:80]!r}")
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


def _refuse_copies(sentence: str, exemplars: tuple[dict, ...], what: str) -> None:
    for example in exemplars:
        for field_name in ("text", "safe_twin_text"):
            if jaccard(shingles(sentence), shingles(example.get(field_name, ""))) >= EXEMPLAR_COPY_THRESHOLD:
                raise ParseError(f"the {what} copies a few-shot exemplar instead of writing one for this scene")


class QueryCall(TemplateCall):
    """Step 5a: a query harmless alone, with few-shot exemplars and the verifier's feedback from earlier
    attempts. item: QueryItem -> str."""

    prompt_name = "query"

    def variables(self, item: QueryItem) -> dict:
        return {"scene": item.scene, "risk": item.risk, "feedback": list(item.feedback), "exemplars": list(item.exemplars)}

    def photo(self, item: QueryItem) -> Photo:
        return item.photo

    def parse(self, item: QueryItem, response: ChatResponse) -> str:
        text = parse_sentence(response, _QUERY_KEYS, "query")
        _refuse_copies(text, item.exemplars, "query")
        return text


class TwinCall(TemplateCall):
    """Step 5b: the query's safe twin (minimally different, safe with the same photo). item: TwinItem -> str."""

    prompt_name = "twin"

    def variables(self, item: TwinItem) -> dict:
        return {"scene": item.scene, "risk": item.risk, "text": item.text, "feedback": list(item.feedback),
                "exemplars": list(item.exemplars)}

    def photo(self, item: TwinItem) -> Photo:
        return item.photo

    def parse(self, item: TwinItem, response: ChatResponse) -> str:
        twin = parse_sentence(response, _TWIN_KEYS + _QUERY_KEYS, "safe twin")
        if " ".join(twin.lower().split()) == " ".join(item.text.lower().split()):
            raise ParseError("the safe twin is identical to the query")
        _refuse_copies(twin, item.exemplars, "safe twin")
        return twin


@dataclass(frozen=True)
class VerifyItem:
    """One verifier check: `photo` and/or `text` (text_alone: no photo; image_alone: no text)."""

    check: str  # text_alone | image_alone | pair | safe_twin
    photo: Photo | None
    text: str = ""


_SHOWN = {
    "text_alone": "a user's message, without any photo",
    "image_alone": "a photo, without any message",
    "pair": "a photo together with the user's message about it",
    "safe_twin": "a photo together with the user's message about it",
}


class VerifyCall(TemplateCall):
    """Step 6: one information-complementarity check by the verifier. item: VerifyItem -> Verdict.

    With `scored=True` the verifier writes nothing: its answer is read from the next-token log-probabilities
    after `{"verdict": "`, and the Verdict carries `score` = log P(unsafe) - log P(safe) (verdict: the sign).
    The run then compares the scores of a pair and its parts (`verdict_margin`, see process.py): small
    models answer "safe" to almost everything when they generate, yet rank a risky pair above its parts."""

    prompt_name = "verify"
    VERDICT_PREFIX = '{"verdict": "'

    def __init__(self, *, scored: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.scored = scored
        if scored:
            self.template_version = f"{self.template_version}+logodds"

    def variables(self, item: VerifyItem) -> dict:
        return {"shown": _SHOWN[item.check], "with_image": item.photo is not None, "text": item.text}

    def photo(self, item: VerifyItem) -> Photo | None:
        return item.photo

    def request(self, item) -> ChatRequest:
        request = super().request(item)
        if not self.scored:
            return request
        return replace(request, choices=(SAFE, UNSAFE), answer_prefix=self.VERDICT_PREFIX, max_tokens=1)

    def parse(self, item: VerifyItem, response: ChatResponse) -> Verdict:
        if not self.scored:
            return parse_verdict_answer(response)
        scores = parse_json(response.text, expect=dict).get("choice_logprobs") or {}
        if SAFE not in scores or UNSAFE not in scores:
            raise ParseError(f"no choice log-probabilities for safe/unsafe in {response.text[:80]!r}")
        log_odds = round(scores[UNSAFE] - scores[SAFE], 4)
        return Verdict(UNSAFE if log_odds > 0 else SAFE, f"log-odds unsafe:safe {log_odds:+.2f}", log_odds)


@dataclass(frozen=True)
class RespondItem:
    photo: Photo
    scene: str
    text: str
    label: str  # which response to write: safe (guidance) or unsafe (risk-ignoring)


class RespondCall(TemplateCall):
    """Step 7: the guidance (safe) or risk-ignoring (unsafe) response. item: RespondItem -> str.
    One instance per label (the label picks the template)."""

    def __init__(self, label: str, *, vision: bool, **kwargs):
        self.prompt_name = f"respond_{label}"
        self.label = label
        super().__init__(vision=vision, **kwargs)

    def variables(self, item: RespondItem) -> dict:
        return {"scene": item.scene, "text": item.text}

    def photo(self, item: RespondItem) -> Photo:
        return item.photo

    def parse(self, item: RespondItem, response: ChatResponse) -> str:
        text = _non_empty(response.text, "response")
        if self.label == UNSAFE and _REFUSAL.match(text):
            raise ParseError("the model refused to write the unsafe (risk-ignoring) response")
        return text


@dataclass(frozen=True)
class CheckItem:
    photo: Photo
    text: str
    risk: str
    response: str
    label: str  # the label the response should carry


class CheckResponseCall(TemplateCall):
    """Step 7b: does the response carry its label? item: CheckItem -> Verdict."""

    prompt_name = "check_response"

    def variables(self, item: CheckItem) -> dict:
        return {"text": item.text, "risk": item.risk, "response": item.response}

    def photo(self, item: CheckItem) -> Photo:
        return item.photo

    def parse(self, item: CheckItem, response: ChatResponse) -> Verdict:
        return parse_verdict_answer(response)
