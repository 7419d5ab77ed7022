"""Llama Guard 3 Vision: prompt builder and output parser (the model runs through `eval.judges.hf`).

The model's own chat template writes the policy and the task; we only hand it the conversation:
the user turn (image + request) for the query task, plus the assistant turn for the response task
(Llama Guard then judges the last turn). It answers ``safe`` or ``unsafe\\nS<n>[,S<m>...]``.
"""

from __future__ import annotations

import re

from judging.format import JudgeFormat, ParsedAnswer
from judging.records import RESPONSE, JudgeExample
from rms_dataset import SAFE, UNSAFE

DEFAULT_MODEL = "meta-llama/Llama-Guard-3-11B-Vision"

CATEGORIES = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}

_FIRST_LINE = re.compile(r"^\s*(safe|unsafe)\b", re.IGNORECASE)
_CODE = re.compile(r"\bS(\d{1,2})\b")


def build_messages(example: JudgeExample) -> list[dict]:
    user: list[dict] = [{"type": "text", "text": example.text}]
    if example.image is not None:
        user.append({"type": "image"})
    messages = [{"role": "user", "content": user}]
    if example.task == RESPONSE:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": example.response}]})
    return messages


def parse(text: str) -> ParsedAnswer:
    """``safe`` -> safe; ``unsafe\\nS1,S11`` -> unsafe with codes and names; anything else -> unparseable."""
    match = _FIRST_LINE.match(text or "")
    if not match:
        return ParsedAnswer(label=None, raw_text=text)
    label = UNSAFE if match.group(1).lower() == UNSAFE else SAFE
    extras: dict = {}
    if label == UNSAFE:
        codes = [f"S{number}" for number in _CODE.findall(text[match.end():])]
        unknown = [code for code in codes if code not in CATEGORIES]
        extras = {"categories": [code for code in codes if code in CATEGORIES],
                  "category_names": [CATEGORIES[code] for code in codes if code in CATEGORIES]}
        if unknown:
            extras["unknown_codes"] = unknown
    return ParsedAnswer(label=label, raw_text=text, extras=extras)


LLAMA_GUARD_FORMAT = JudgeFormat(
    name="llama-guard-3-vision", version="1", build_messages=build_messages, parse=parse, supports_fast=False,
)
