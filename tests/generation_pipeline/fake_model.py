"""A scripted stand-in for the generator and verifier: answers each pipeline prompt from its content, so
tests can steer every branch through the photo descriptions (the caption text-only backends receive).

Caption keywords: UNSAFE_PHOTO (screen rejects), VERIFIER_IMAGE_UNSAFE (only the verifier's image-alone
check says unsafe), LEAKY (the first query says "dangerous": text alone unsafe, fixed after feedback),
BLAND (the first query does not combine with the scene: pair safe, fixed after feedback), BAD_TWIN (the
first safe twin is unsafe, fixed after feedback), HOPELESS (every query leaks: rewrite budget exhausted),
SAME_QUERY (a query text shared with other SAME_QUERY images: dedup), risk words "cliff", "stove", "pool".
"""

from __future__ import annotations

import json
import re

from modelcalls.base import ChatRequest, message_text

RISKS = {"cliff": ("falls", "fall_from_height", "a step back near the edge"),
         "stove": ("fire_and_burns", "kitchen_fire", "leaving a pan unattended"),
         "pool": ("drowning", "unsupervised_swimming", "a swim alone at night")}


def _caption(user: str) -> str:
    match = re.search(r"described in words\): (.*)", user)
    return match.group(1) if match else ""


def _subject(user: str) -> str:
    words = re.search(r"Scene: Scene of (.*)", user)
    return (words.group(1) if words else "this place").split(".")[0]


def respond(request: ChatRequest) -> str:
    system, user = message_text(request.messages[0]), message_text(request.messages[-1])
    caption = _caption(user)
    if "content-safety screener" in system:
        return json.dumps({"verdict": "unsafe" if "UNSAFE_PHOTO" in caption else "safe", "reason": "screened"})
    if "You describe photographs" in system:
        return json.dumps({"scene": f"Scene of {caption}"})
    if "find HIDDEN risks" in system:
        scene = user.lower()
        risks = [{"category": cat, "subcategory": sub, "intention": intent, "rationale": f"{intent} is harmless alone"}
                 for word, (cat, sub, intent) in RISKS.items() if word in scene]
        return json.dumps({"risks": risks or [{"category": "misc hazard", "subcategory": "misc", "intention": "x", "rationale": "y"}]})
    if "You write user queries" in system:
        rewrite = "previous attempts were rejected" in user
        if "SAME_QUERY" in user:
            return "What a nice place, can I spend the night here?"
        subject = _subject(user)
        if "HOPELESS" in user or ("LEAKY" in user and not rewrite):
            return f"How do I do something dangerous at {subject}?"
        if "BLAND" in user and not rewrite:
            return json.dumps({"text": f"BLAND question about {subject}?"})  # JSON answers are read too
        return f"Query: I'd like to get closer to {subject}, any tips?"
    if "SAFE TWIN" in system:
        rewrite = "Earlier attempts were rejected" in user
        subject = _subject(user)
        if "SAME_QUERY" in user:
            return "Can I visit this place by day?"
        if "BAD_TWIN" in user and not rewrite:
            return f"TWINUNSAFE twin for {subject}"
        return f"Can I enjoy {subject} from afar?"
    if "strict safety verifier" in system and "assistant's reply" in user:
        reply = re.search(r"The assistant's reply: \"(.*)\"", user, re.DOTALL).group(1)
        return json.dumps({"verdict": "safe" if reply.startswith("Careful") else "unsafe", "reason": "checked"})
    if "strict safety verifier" in system:
        message = re.search(r"The user's message: \"(.*)\"", user)
        text = message.group(1) if message else ""
        if "without any message" in system:
            unsafe = "VERIFIER_IMAGE_UNSAFE" in caption
        elif "without any photo" in system:
            unsafe = "dangerous" in text
        elif "afar" in text:
            unsafe = False
        else:
            unsafe = not text.startswith("BLAND")
        return json.dumps({"verdict": "unsafe" if unsafe else "safe", "reason": f"scripted {'unsafe' if unsafe else 'safe'}"})
    if "careful assistant" in system:
        return "Careful: the scene has a hidden danger; keep your distance and do it the safe way."
    if "NEGATIVE example" in system:
        return "Sure, go ahead and enjoy it!"
    raise AssertionError(f"fake model: unknown prompt {system[:60]!r}")
