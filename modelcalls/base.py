"""The records every backend speaks (``ChatRequest`` -> ``ChatResponse``), the ``Backend`` protocol and
``make_backend(spec)``, which builds a backend from one role's block of the run YAML.

Messages use the OpenAI chat format. Images are content parts
``{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,..."}}``; helpers below build and
decode them so that every backend reads images the same way.
"""

from __future__ import annotations

import base64
import binascii
import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request. Everything here is part of the cache key."""

    messages: tuple[dict, ...]
    # The call's name ("scene", "verify", ...): set by the runner from ``ModelCall.name`` so that backends
    # and test fakes route on it, never on prompt wording. Already part of the cache key as the call name.
    name: str = ""
    temperature: float = 0.0
    max_tokens: int = 512
    json_schema: dict | None = None  # ask for structured output when the backend supports it
    seed: int | None = 0
    # Choice scoring instead of generation: the answer is the log-probability of the first token of each
    # choice right after `answer_prefix`, returned as JSON text {"choice_logprobs": {choice: logprob}}.
    # Backends without access to logits raise BackendError (see TransformersBackend).
    choices: tuple[str, ...] | None = None
    answer_prefix: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.messages, list):
            object.__setattr__(self, "messages", tuple(self.messages))
        if not self.messages:
            raise ValueError("ChatRequest.messages is empty: give at least one {'role': ..., 'content': ...}.")
        for index, message in enumerate(self.messages):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise ValueError(
                    f"ChatRequest.messages[{index}] must be a dict with 'role' and 'content', got {message!r:.120}"
                )
        if self.max_tokens <= 0:
            raise ValueError(f"ChatRequest.max_tokens must be positive, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"ChatRequest.temperature must be >= 0, got {self.temperature}")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
            if len(set(self.choices)) < 2 or not all(isinstance(c, str) and c for c in self.choices):
                raise ValueError(f"ChatRequest.choices needs at least two distinct non-empty strings, got {self.choices!r}")

    def named(self, name: str) -> ChatRequest:
        """This request with ``name`` set (the runner names every request after its call). A copy of
        checked fields, so unlike ``dataclasses.replace`` it skips the checks: it is made once per call."""
        copy = object.__new__(ChatRequest)
        copy.__dict__.update(self.__dict__)
        object.__setattr__(copy, "name", name)
        return copy


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True)
class ChatResponse:
    """The model's answer. Refusals, empty text and ``finish_reason == "length"`` are returned as they are:
    the call's ``parse()`` decides what they mean."""

    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    cached: bool = False

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@runtime_checkable
class Backend(Protocol):
    """A model behind ``chat()``. Optionally, ``async def identify() -> dict | None`` says what answers
    under ``model`` (the Hub commit or weights' fingerprint loaded, what a server reports it serves); a
    pipeline puts it into its provenance, step fingerprints and cache keys."""

    model: str  # model id, part of the cache key
    supports_images: bool  # text-only backends get the manifest caption instead of pixels

    async def chat(self, request: ChatRequest) -> ChatResponse: ...

    async def aclose(self) -> None: ...


class BackendError(Exception):
    """Final failure of a backend call after its retries. The message says why (HTTP status, an excerpt of
    the body); it never contains an API key."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1):
        super().__init__(message)
        self.status = status
        self.attempts = attempts


# ---------------------------------------------------------------------------------------------- images

def image_data_url(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_part(data: bytes, mime: str = "image/jpeg") -> dict:
    """The OpenAI content part carrying an image inline."""
    return {"type": "image_url", "image_url": {"url": image_data_url(data, mime)}}


def image_url_of(part: dict) -> str | None:
    """The URL of an ``image_url`` content part (``None`` for other parts)."""
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    url = part.get("image_url")
    return url.get("url") if isinstance(url, dict) else url


def decode_data_url(url: str) -> bytes:
    """Bytes of a ``data:<mime>;base64,<payload>`` URL; a clear error for anything else."""
    if not url.startswith("data:") or ";base64," not in url[:100]:
        raise ValueError(
            f"expected an inline image 'data:<mime>;base64,...', got {url[:60]!r}; "
            "local backends cannot fetch remote URLs: inline the image bytes (modelcalls.base.image_part)."
        )
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"the image data URL is not valid base64 ({error})") from None


def message_text(message: dict) -> str:
    """The text of a message, whether its content is a string or a list of parts."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


# -------------------------------------------------------------------------------------------- factory

# name -> "module:factory"; each factory takes the spec (minus "backend") and validates its own keys.
BACKENDS = {
    "openai": "modelcalls.openai_backend:OpenAIBackend.from_spec",
    "transformers": "modelcalls.transformers_backend:TransformersBackend.from_spec",
    "scripted": "modelcalls.scripted_backend:ScriptedBackend.from_spec",
}


def make_backend(spec: dict[str, Any]) -> Backend:
    """Build a backend from one role's block of the run YAML, e.g.
    ``{"backend": "openai", "model": "gpt-4o", "base_url": "http://127.0.0.1:8000/v1", "max_concurrency": 16}``
    or ``{"backend": "transformers", "model": "smollm2", "batch_size": 8}``. See docs/generation_backends.md."""
    if not isinstance(spec, dict):
        raise ValueError(f"a backend spec must be a mapping with a 'backend' key, got {type(spec).__name__}")
    options = dict(spec)
    name = options.pop("backend", None)
    if name not in BACKENDS:
        raise ValueError(f"backend: {name!r} is not one of {sorted(BACKENDS)} (spec keys: {sorted(spec)})")
    module_name, factory_path = BACKENDS[name].split(":")
    factory: Any = importlib.import_module(module_name)
    for attribute in factory_path.split("."):
        factory = getattr(factory, attribute)
    return factory(options)


def check_spec_keys(backend: str, options: dict, allowed: set[str], required: set[str] = frozenset()) -> None:
    """Reject unknown or missing keys of a backend spec with a message naming them."""
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"backend {backend!r}: unknown key(s) {sorted(unknown)}; allowed keys are {sorted(allowed)}"
        )
    missing = set(required) - set(options)
    if missing:
        raise ValueError(f"backend {backend!r}: missing required key(s) {sorted(missing)}")
