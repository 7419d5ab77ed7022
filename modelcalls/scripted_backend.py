"""``ScriptedBackend``: a backend that answers from a function or a list of canned replies, for tests.

    ScriptedBackend(respond=lambda request: '{"verdict": "unsafe"}')
    ScriptedBackend(replies=["not json", '{"ok": true}'])            # one reply per call, in order
    ScriptedBackend(replies=[Fault.rate_limited(retry_after=0.01), "fine"], max_retries=2)

A reply is a string (the answer text), a ``ChatResponse`` or a ``Fault``. Transient faults (429, 500,
timeout) go through the same retry policy as the HTTP backend: each one consumes a reply and, once
``max_retries`` are spent, ``chat()`` raises ``BackendError``. Content faults (malformed JSON, truncated
JSON, refusal, empty answer) are returned as answers for the call's ``parse()`` to judge.

``respond`` may return any of these too, may be ``async``, and sees every ``ChatRequest``, so a test can
force a verdict per prompt::

    ScriptedBackend(respond=lambda r: "unsafe" if "knife" in message_text(r.messages[-1]) else "safe")

``.calls`` counts the attempts. A test that reads the requests themselves asks for them with
``record_requests=True`` (kept in ``.requests``); by default none is kept: a long run's requests, photos
included, would fill the memory.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modelcalls.base import BackendError, ChatRequest, ChatResponse, Usage, check_spec_keys, message_text
from modelcalls.retry import RetryPolicy, TransientError, with_retries


@dataclass(frozen=True)
class Fault:
    """An injected failure. Build with the class methods."""

    kind: str  # "http" | "timeout" | "answer"
    status: int | None = None
    retry_after: float | None = None
    response: ChatResponse | None = None

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> Fault:
        return cls("http", status=429, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls("http", status=status)

    @classmethod
    def bad_request(cls, status: int = 400) -> Fault:
        """A non-retryable HTTP error: ``chat()`` raises ``BackendError`` at once."""
        return cls("http", status=status)

    @classmethod
    def timeout(cls) -> Fault:
        return cls("timeout")

    @classmethod
    def malformed_json(cls) -> Fault:
        return cls("answer", response=ChatResponse('{"verdict": unsafe, oops', Usage(10, 5), "stop"))

    @classmethod
    def truncated_json(cls) -> Fault:
        return cls("answer", response=ChatResponse('{"verdict": "unsafe", "reason": "the ca', Usage(10, 8), "length"))

    @classmethod
    def refusal(cls) -> Fault:
        return cls("answer", response=ChatResponse("I'm sorry, but I can't help with that.", Usage(10, 9), "stop"))

    @classmethod
    def empty(cls) -> Fault:
        return cls("answer", response=ChatResponse("", Usage(10, 0), "stop"))


Reply = str | ChatResponse | Fault


def _rough_usage(request: ChatRequest, text: str) -> Usage:
    prompt_words = sum(len(message_text(m).split()) for m in request.messages)
    return Usage(prompt_words, len(text.split()))


class ScriptedBackend:
    def __init__(
        self,
        respond: Callable[[ChatRequest], Reply] | None = None,
        *,
        replies: Sequence[Reply] | None = None,
        model: str = "scripted",
        supports_images: bool = True,
        max_retries: int = 0,
        retry_base_delay_s: float = 0.0,
        delay_s: float = 0.0,
        record_requests: bool = False,
    ):
        if (respond is None) == (replies is None):
            raise ValueError("ScriptedBackend needs exactly one of respond=<function> or replies=[...]")
        self.respond = respond
        self._replies = list(replies) if replies is not None else None
        self.model = model
        self.supports_images = supports_images
        self.policy = RetryPolicy(max_retries=max_retries, base_delay_s=retry_base_delay_s)
        self.delay_s = delay_s
        self.record_requests = record_requests
        self.requests: list[ChatRequest] = []  # every attempt, retries included (with record_requests)
        self.calls = 0  # attempts, retries included
        self.closed = False

    @classmethod
    def from_spec(cls, options: dict) -> ScriptedBackend:
        """YAML: ``{backend: scripted, replies: [...]}`` or ``{backend: scripted, respond: "module:function"}``."""
        allowed = {"model", "replies", "respond", "supports_images", "max_retries", "delay_s", "max_concurrency"}
        check_spec_keys("scripted", options, allowed)
        options = dict(options)
        options.pop("max_concurrency", None)
        respond = options.pop("respond", None)
        if isinstance(respond, str):
            module_name, _, function_name = respond.partition(":")
            if not function_name:
                raise ValueError(f"backend 'scripted': respond must be 'module:function', got {respond!r}")
            respond = getattr(importlib.import_module(module_name), function_name)
        replies = options.pop("replies", None)
        if replies is not None:
            replies = [r if isinstance(r, str) else json.dumps(r) for r in replies]
        return cls(respond, replies=replies, **options)

    async def _next_reply(self, request: ChatRequest) -> Reply:
        self.calls += 1
        if self.record_requests:
            self.requests.append(request)
        if self._replies is not None:
            if not self._replies:
                raise BackendError(
                    f"ScriptedBackend: no canned reply left for call #{self.calls}; add more replies"
                )
            return self._replies.pop(0)
        reply = self.respond(request)
        if inspect.isawaitable(reply):
            reply = await reply
        return reply

    async def _attempt(self, request: ChatRequest) -> ChatResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        reply = await self._next_reply(request)
        if isinstance(reply, str):
            return ChatResponse(reply, _rough_usage(request, reply), "stop")
        if isinstance(reply, ChatResponse):
            return reply
        if isinstance(reply, Fault):
            if reply.kind == "answer":
                return reply.response
            if reply.kind == "timeout":
                raise TransientError("timed out (scripted)")
            if reply.status == 429 or reply.status >= 500:
                raise TransientError(f"HTTP {reply.status} (scripted)", status=reply.status, retry_after=reply.retry_after)
            raise BackendError(f"HTTP {reply.status} (scripted)", status=reply.status)
        raise TypeError(f"ScriptedBackend: a reply must be str, ChatResponse or Fault, got {type(reply).__name__}")

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await with_retries(lambda: self._attempt(request), self.policy, what=f"scripted {self.model}")

    async def aclose(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"ScriptedBackend(model={self.model!r}, calls={self.calls})"
