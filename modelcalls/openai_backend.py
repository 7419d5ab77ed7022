"""``OpenAIBackend``: any OpenAI-compatible chat-completions server (OpenAI, vLLM, SGLang, TGI,
``transformers serve``, llama.cpp, Ollama) over ``httpx.AsyncClient``.

* At most ``max_concurrency`` requests in flight.
* 429 / 408 / 409 / 5xx, timeouts and connection errors are retried ``max_retries`` times with exponential
  backoff and full jitter, honouring ``Retry-After`` (seconds or HTTP date), each wait capped at
  ``retry_max_delay_s``. Other errors (400, 401, 404, ...) fail at once with ``BackendError``.
* ``ChatRequest.json_schema`` is sent as ``response_format={"type": "json_schema", ...}``. If the server
  answers 400 naming ``response_format``, the request is sent once more without it and the backend stops
  asking for structured output (the prompt itself must still ask for JSON; the parser is tolerant).
* The API key is read from the environment variable named by ``api_key_env``; without it, ``OPENAI_API_KEY``
  is used for api.openai.com only and no key is sent elsewhere (local servers need none). The key never
  appears in errors, logs or ``repr``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any
from urllib.parse import urlsplit

import httpx

from modelcalls.base import BackendError, ChatRequest, ChatResponse, Usage, check_spec_keys
from modelcalls.retry import RetryPolicy, TransientError, parse_retry_after, with_retries

log = logging.getLogger(__name__)

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_HOST = "api.openai.com"
_RETRYABLE_STATUS = {408, 409, 425, 429}
_BODY_EXCERPT = 300
_SPEC_KEYS = {
    "model",
    "base_url",
    "api_key_env",
    "max_concurrency",
    "timeout_s",
    "max_retries",
    "retry_base_delay_s",
    "retry_max_delay_s",
    "supports_images",
    "structured_output",
    "max_tokens_field",
    "extra_body",
    "headers",
}


class OpenAIBackend:
    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = None,
        max_concurrency: int = 16,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        retry_base_delay_s: float = 0.5,
        retry_max_delay_s: float = 30.0,
        supports_images: bool = True,
        structured_output: bool = True,
        max_tokens_field: str = "max_tokens",
        extra_body: dict | None = None,
        headers: dict | None = None,
    ):
        if not model:
            raise ValueError("backend 'openai': 'model' is required (the model id the server serves)")
        if max_concurrency < 1:
            raise ValueError(f"backend 'openai': max_concurrency must be >= 1, got {max_concurrency}")
        if max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            raise ValueError("backend 'openai': max_tokens_field must be 'max_tokens' or 'max_completion_tokens'")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.supports_images = supports_images
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.policy = RetryPolicy(max_retries, retry_base_delay_s, retry_max_delay_s)
        self.structured_output = structured_output  # switched off once the server rejects response_format
        self.max_tokens_field = max_tokens_field
        self.extra_body = dict(extra_body or {})
        self._headers = dict(headers or {})
        if api_key_env:
            self._api_key = os.environ.get(api_key_env) or None
            if self._api_key is None:
                raise ValueError(
                    f"backend 'openai': api_key_env names ${api_key_env}, which is not set; export it "
                    "(or drop api_key_env for a local server that needs no key)"
                )
        elif urlsplit(self.base_url).hostname == OPENAI_HOST:
            api_key_env = DEFAULT_API_KEY_ENV
            self._api_key = os.environ.get(api_key_env) or None
        else:
            # Never send $OPENAI_API_KEY to a server it was not named for.
            self._api_key = None
        self.api_key_env = api_key_env
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None

    @classmethod
    def from_spec(cls, options: dict) -> OpenAIBackend:
        check_spec_keys("openai", options, _SPEC_KEYS, required={"model"})
        return cls(**options)

    # -------------------------------------------------------------------------------------- plumbing

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
            if len(self._api_key) > 12:  # servers echo keys partly masked, e.g. "sk-abc1*****wxyz"
                text = text.replace(self._api_key[:8], "***")
        return text

    def _ensure_client(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """One client + semaphore per event loop (both are bound to the loop that first uses them)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            headers = {"Content-Type": "application/json", **self._headers}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s),
                limits=httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency),
            )
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._loop = loop
        return self._client, self._semaphore

    def _body(self, request: ChatRequest, structured: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(request.messages),
            "temperature": request.temperature,
            self.max_tokens_field: request.max_tokens,
            **self.extra_body,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if structured and request.json_schema is not None:
            schema = request.json_schema
            if not ("schema" in schema and "name" in schema):  # a bare JSON schema: wrap it
                schema = {"name": str(schema.get("title", "output")).replace(" ", "_"), "schema": schema}
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        return body

    def _excerpt(self, response: httpx.Response) -> str:
        text = " ".join(response.text.split())
        if len(text) > _BODY_EXCERPT:
            text = text[:_BODY_EXCERPT] + "..."
        return self._redact(text)

    async def _post(self, body: dict) -> httpx.Response:
        client, semaphore = self._ensure_client()
        async with semaphore:
            try:
                response = await client.post("/chat/completions", json=body)
            except httpx.TimeoutException as error:
                raise TransientError(f"timed out after {self.timeout_s}s ({type(error).__name__})") from None
            except httpx.TransportError as error:
                raise TransientError(self._redact(f"connection error: {type(error).__name__}: {error}")) from None
        status = response.status_code
        if status == 200:
            return response
        reason = f"HTTP {status} from {self.base_url}/chat/completions: {self._excerpt(response)}"
        if status in _RETRYABLE_STATUS or status >= 500:
            raise TransientError(reason, status=status, retry_after=parse_retry_after(response.headers.get("retry-after")))
        raise BackendError(reason, status=status)

    def _read(self, response: httpx.Response) -> ChatResponse:
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            raise TransientError(f"malformed completion body from {self.base_url}: {self._excerpt(response)}") from None
        text = message.get("content")
        if text is None:
            text = message.get("refusal") or ""
        if isinstance(text, list):  # some servers return content parts
            text = "".join(part.get("text", "") for part in text if isinstance(part, dict))
        usage = data.get("usage") or {}
        return ChatResponse(
            text=text,
            usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)),
            finish_reason=choice.get("finish_reason"),
        )

    async def _attempt(self, request: ChatRequest) -> ChatResponse:
        structured = self.structured_output and request.json_schema is not None
        try:
            response = await self._post(self._body(request, structured))
        except BackendError as error:
            if not (structured and error.status == 400 and "response_format" in str(error)):
                raise
            log.warning("%s rejected response_format; asking for JSON in the prompt only from now on", self.base_url)
            self.structured_output = False
            response = await self._post(self._body(request, False))
        return self._read(response)

    # --------------------------------------------------------------------------------------- Backend

    async def chat(self, request: ChatRequest) -> ChatResponse:
        if request.choices is not None:
            raise BackendError(
                f"openai {self.model}: choice scoring (a run's verdict_margin) reads next-token log-probabilities "
                "in-process; use the transformers backend for that role, or leave verdict_margin unset"
            )
        return await with_retries(lambda: self._attempt(request), self.policy, what=f"openai {self.model}")

    async def aclose(self) -> None:
        """Close the HTTP connections. The backend stays usable: the next ``chat()`` opens a new client."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is running and running is not None:
            await client.aclose()
        # else: the connections belong to a loop that has ended; they died with it.

    def __repr__(self) -> str:
        key = f"key from ${self.api_key_env}" if self._api_key else "no key"
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, {key})"
