"""Small model calls used across these tests."""

from __future__ import annotations

from modelcalls import ChatRequest, ChatResponse, ModelCall, ParseError
from modelcalls.json_parse import parse_json


def user(text: str) -> tuple[dict, ...]:
    return ({"role": "user", "content": text},)


class VerdictCall(ModelCall[str, str]):
    """Asks for {"verdict": ...} about a sentence; parse returns the verdict string."""

    name = "verdict"
    template_version = "v1"

    def request(self, item: str) -> ChatRequest:
        return ChatRequest(messages=user(f"Is this safe? {item}"), max_tokens=32)

    def parse(self, item: str, response: ChatResponse) -> str:
        if response.truncated:
            raise ParseError(f"answer cut at max_tokens: {response.text[-40:]!r}")
        verdict = parse_json(response.text, expect=dict).get("verdict")
        if verdict not in ("safe", "unsafe"):
            raise ParseError(f"verdict must be safe or unsafe, got {verdict!r}")
        return verdict


class EchoCall(ModelCall[str, str]):
    """Returns the answer text as is (no parsing constraints)."""

    name = "echo"
    template_version = "v1"

    def __init__(self, max_tokens: int = 16):
        self.max_tokens = max_tokens

    def request(self, item: str) -> ChatRequest:
        return ChatRequest(messages=user(item), max_tokens=self.max_tokens)

    def parse(self, item: str, response: ChatResponse) -> str:
        return response.text


def always_unsafe(request: ChatRequest) -> str:
    """A scripted ``respond`` function, referenced from YAML as ``tests.modelcalls.helpers:always_unsafe``."""
    return '{"verdict": "unsafe"}'
