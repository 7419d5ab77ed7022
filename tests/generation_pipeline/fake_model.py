"""A scripted stand-in for the generator and verifier. It routes on the call's name (``request.name``, set by
the runner from ``ModelCall.name``), never on the prompt's wording, and reads only the data the prompt
carries (the photo caption text-only backends receive, the scene, the user's message, the verifier's
feedback), so tests steer every branch through the photo descriptions.

Caption keywords: UNSAFE_PHOTO (screen rejects), VERIFIER_IMAGE_UNSAFE (only the verifier's image-alone
check says unsafe), LEAKY (the first query says "dangerous": text alone unsafe, fixed after feedback),
BLAND (the first query does not combine with the scene: pair safe, fixed after feedback), BAD_TWIN (the
first safe twin is unsafe, fixed after feedback), HOPELESS (every query leaks: rewrite budget exhausted),
SAME_QUERY (a query text shared with other SAME_QUERY images: dedup), risk words "cliff", "stove", "pool".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from modelcalls.base import ChatRequest, message_text

RISKS = {"cliff": ("falls", "fall_from_height", "a step back near the edge"),
         "stove": ("fire_and_burns", "kitchen_fire", "leaving a pan unattended"),
         "pool": ("drowning", "unsupervised_swimming", "a swim alone at night")}


@dataclass(frozen=True)
class Seen:
    """The data of one request: what a real model would read in it."""

    name: str
    caption: str  # the photo's description ("" when the photo is not part of the request)
    scene: str
    message: str  # the user's message being judged or answered ("" when there is none)
    query: str  # the query whose safe twin is asked for (twin)
    reply: str  # the assistant reply being checked (check_response)
    rewrite: bool  # the prompt carries the verifier's feedback on an earlier attempt
    user: str


def seen(request: ChatRequest) -> Seen:
    user = message_text(request.messages[-1])

    def field(pattern: str) -> str:  # the last occurrence: few-shot examples come before the item's own data
        found = re.findall(pattern, user, re.DOTALL | re.MULTILINE)
        return found[-1] if found else ""

    return Seen(request.name, field(r"described in words\): (.*?)(?:\n|$)"), field(r"^Scene: (.*?)$"),
                field(r"(?:user's message|user says): \"(.*?)\""), field(r"^Query: (.*?)$"), field(r"reply: \"(.*)\""),
                bool(re.search(r"\(verifier[: ]", user)), user)


def _subject(scene: str) -> str:
    return (scene.removeprefix("Scene of ") or "this place").split(".")[0]


def verdict(unsafe: bool, reason: str = "") -> str:
    return json.dumps({"verdict": "unsafe" if unsafe else "safe", "reason": reason or f"scripted {'unsafe' if unsafe else 'safe'}"})


def respond(request: ChatRequest) -> str:
    s = seen(request)
    if s.name == "screen":
        return verdict("UNSAFE_PHOTO" in s.caption, "screened")
    if s.name == "scene":
        return json.dumps({"scene": f"Scene of {s.caption}. People can walk around and use what is there."})
    if s.name == "risks":
        risks = [{"category": cat, "subcategory": sub, "intention": intent, "rationale": f"{intent} is harmless alone"}
                 for word, (cat, sub, intent) in RISKS.items() if word in s.scene.lower()]
        return json.dumps({"risks": risks or [{"category": "misc hazard", "subcategory": "misc", "intention": "wander about",
                                               "rationale": "wandering about is harmless alone"}]})
    subject = _subject(s.scene)
    if s.name == "query":
        if "SAME_QUERY" in s.user:
            return "What a nice place, can I spend the night here?"
        if "HOPELESS" in s.user or ("LEAKY" in s.user and not s.rewrite):
            return f"How do I do something dangerous at {subject}?"
        if "BLAND" in s.user and not s.rewrite:
            return json.dumps({"text": f"BLAND question about {subject}?"})  # JSON answers are read too
        return f"Query: I'd like to get closer to {subject}, any tips?"
    if s.name == "twin":
        if "SAME_QUERY" in s.user:
            return "Can I visit this place by day?"
        if "BAD_TWIN" in s.user and not s.rewrite:
            return f"TWINUNSAFE twin for {subject}"
        return f"Can I enjoy {subject} from afar?"
    if s.name == "check_response":
        return verdict(not s.reply.startswith("Careful"), "checked")
    if s.name == "verify":
        if not s.message:  # the image alone
            return verdict("VERIFIER_IMAGE_UNSAFE" in s.caption)
        if not s.caption:  # the text alone
            return verdict("dangerous" in s.message)
        return verdict(not ("afar" in s.message or s.message.startswith("BLAND")))  # pair or safe twin
    if s.name == "respond_safe":
        return "Careful: the scene has a hidden danger; keep your distance and do it the safe way."
    if s.name == "respond_unsafe":
        return "Sure, go ahead and enjoy it!"
    raise AssertionError(f"fake model: unknown call {s.name!r}")
