"""``OpenAIBackend``: any OpenAI-compatible chat-completions server (OpenAI, vLLM, SGLang, TGI,
``transformers serve``, llama.cpp, Ollama) over ``pyreqwest``, on one server or several replicas of it.

* At most ``max_concurrency`` requests in flight (all replicas together).
* ``base_url`` may be a list of replicas: each request goes to the one with the fewest requests outstanding;
  a replica whose connections fail or time out ``eject_after`` times in a row is taken out for
  ``eject_for_s`` and tried again later; a request it failed is re-sent at once to another replica
  (``modelcalls/replicas.py``). ``replica_stats()`` reports requests, failures and ejections per replica.
* 429 / 408 / 409 / 5xx, timeouts and connection errors are retried ``max_retries`` times with exponential
  backoff and full jitter, honouring ``Retry-After`` (seconds or HTTP date), each wait capped at
  ``retry_max_delay_s``. Other errors (400, 401, 404, ...) fail at once with ``BackendError``.
* ``ChatRequest.json_schema`` is sent as ``response_format={"type": "json_schema", ...}``. If the server
  answers 400 naming ``response_format``, the request is sent once more without it and the backend stops
  asking for structured output (the prompt itself must still ask for JSON; the parser is tolerant).
* The API key is read from the environment variable named by ``api_key_env``; without it, ``OPENAI_API_KEY``
  is used for api.openai.com only and no key is sent elsewhere (local servers need none). The key never
  appears in errors, logs or ``repr``.

Why pyreqwest (Rust's reqwest and hyper under an asyncio API): measured side by side
(``bench/generation_calls.py``, BENCHMARKS.md), a bare pyreqwest loop costs less than half the client CPU per
call of a bare aiohttp loop, about a tenth of httpx2's and a twentieth of the openai SDK's; the HTTP work
runs in Rust, off the event loop, so one process keeps hundreds of requests in flight. httpx 0.28's
connection pool scans every connection at each request start and finish (O(connections^2) per request).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelcalls.base import BackendError, ChatRequest, ChatResponse, Usage, check_spec_keys
from modelcalls.redact import scrub, secret_values
from modelcalls.replicas import Replica, ReplicaPool
from modelcalls.retry import RetryPolicy, TransientError, parse_retry_after, with_retries

if TYPE_CHECKING:
    from pyreqwest.client import Client

log = logging.getLogger(__name__)

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_HOST = "api.openai.com"
_RETRYABLE_STATUS = {408, 409, 425, 429}
_BODY_EXCERPT = 300
_CLOSE_GRACE_S = 0.1  # see OpenAIBackend.aclose
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
    "eject_after",
    "eject_for_s",
}


class _HTTPAnswer:
    """One HTTP answer, read in full: its status, ``Retry-After`` header, the JSON of a 200 answer (``None``
    when its body is not JSON) and the raw body (read only for an error or an undecodable 200)."""

    __slots__ = ("status", "retry_after", "data", "body")

    def __init__(self, status: int, retry_after: str | None, data: Any, body: bytes):
        self.status, self.retry_after, self.data, self.body = status, retry_after, data, body


async def _read_answer(response) -> _HTTPAnswer:
    """JSON is encoded and decoded by pyreqwest (serde, in Rust): 10-20 us of client CPU less per call than
    Python's json module at concurrency 256 (BENCHMARKS.md)."""
    status = response.status
    if status == 200:
        try:
            return _HTTPAnswer(status, None, await response.json(), b"")
        except ValueError:  # not JSON: keep the bytes for the error message
            pass
    return _HTTPAnswer(status, response.headers.get("Retry-After"), None, bytes(await response.bytes()))


def _transport_reason(error: Exception) -> str:
    """pyreqwest's message and the chain of causes under it, in one line: "connection error: tcp connect
    error: Connection refused (os error 111)"."""
    details = getattr(error, "details", None) or {}
    causes = [cause.get("message", "") for cause in details.get("causes") or () if isinstance(cause, dict)]
    causes = [cause for cause in causes if cause and not cause.startswith("error sending request for url")]
    return ": ".join([getattr(error, "message", None) or type(error).__name__, *causes])


class OpenAIBackend:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | list[str] = "https://api.openai.com/v1",
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
        eject_after: int = 3,
        eject_for_s: float = 10.0,
    ):
        if not model:
            raise ValueError("backend 'openai': 'model' is required (the model id the server serves)")
        if max_concurrency < 1:
            raise ValueError(f"backend 'openai': max_concurrency must be >= 1, got {max_concurrency}")
        if max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            raise ValueError("backend 'openai': max_tokens_field must be 'max_tokens' or 'max_completion_tokens'")
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls or not all(isinstance(url, str) and url.startswith(("http://", "https://")) for url in urls):
            raise ValueError(
                f"backend 'openai': base_url must be an http(s) URL or a non-empty list of them, got {base_url!r}"
            )
        urls = [url.rstrip("/") for url in urls]
        try:
            self.replicas = ReplicaPool(urls, eject_after=eject_after, eject_for_s=eject_for_s)
        except ValueError as error:
            raise ValueError(f"backend 'openai': {error}") from None
        self.model = model
        self.base_url = urls[0] if len(urls) == 1 else urls
        self.supports_images = supports_images
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.policy = RetryPolicy(max_retries, retry_base_delay_s, retry_max_delay_s)
        self.structured_output = structured_output  # switched off once the server rejects response_format
        self.max_tokens_field = max_tokens_field
        self.extra_body = dict(extra_body or {})
        self._headers = dict(headers or {})
        self._secrets = secret_values({"headers": self._headers, "extra_body": self.extra_body})  # never in errors
        hosts = {urlsplit(url).hostname for url in urls}
        if api_key_env:
            self._api_key = os.environ.get(api_key_env) or None
            if self._api_key is None:
                raise ValueError(
                    f"backend 'openai': api_key_env names ${api_key_env}, which is not set; export it "
                    "(or drop api_key_env for a local server that needs no key)"
                )
        elif hosts == {OPENAI_HOST}:
            api_key_env = DEFAULT_API_KEY_ENV
            self._api_key = os.environ.get(api_key_env) or None
        else:
            # Never send $OPENAI_API_KEY to a server it was not named for.
            self._api_key = None
        self.api_key_env = api_key_env
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._endpoints: dict[str, str] = {}  # replica URL -> its chat-completions URL
        self._transport_error: type[Exception] = Exception  # pyreqwest's RequestError once a client is open
        self._timeout_error: type[Exception] = Exception  # pyreqwest's RequestTimeoutError

    @classmethod
    def from_spec(cls, options: dict) -> OpenAIBackend:
        check_spec_keys("openai", options, _SPEC_KEYS, required={"model"})
        return cls(**options)

    # -------------------------------------------------------------------------------------- plumbing

    def _redact(self, text: str) -> str:
        text = scrub(text, self._secrets)
        if self._api_key:
            text = text.replace(self._api_key, "***")
            if len(self._api_key) > 12:  # servers echo keys partly masked, e.g. "sk-abc1*****wxyz"
                text = text.replace(self._api_key[:8], "***")
        return text

    def _ensure_client(self) -> tuple[Client, asyncio.Semaphore]:
        """One HTTP client + semaphore per event loop (both are bound to the loop that first uses them)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # Here, not at import: a run resumed from its cache never loads the HTTP client.
            from pyreqwest.client import ClientBuilder
            from pyreqwest.exceptions import RequestError, RequestTimeoutError

            headers = dict(self._headers)  # Content-Type comes with the JSON body
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._client = (
                ClientBuilder()
                .max_connections(self.max_concurrency)
                .timeout(timedelta(seconds=self.timeout_s))
                .default_headers(headers)
                .no_proxy()  # $HTTP(S)_PROXY is not used: a local server must never be reached through a proxy
                .build()
            )
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._endpoints = {replica.url: f"{replica.url}/chat/completions" for replica in self.replicas.replicas}
            self._transport_error, self._timeout_error = RequestError, RequestTimeoutError  # no import per request
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

    def _excerpt(self, body: bytes) -> str:
        text = " ".join(body.decode("utf-8", "replace").split())
        if len(text) > _BODY_EXCERPT:
            text = text[:_BODY_EXCERPT] + "..."
        return self._redact(text)

    async def _post(self, body: dict, failed: set[str]) -> _HTTPAnswer:
        """One POST to the replica with the fewest requests outstanding. A connection failure or a timeout
        adds the replica to ``failed`` (the replicas this request has failed on) and is a ``TransientError``
        that fails over at once when another replica is in service."""
        client, semaphore = self._ensure_client()
        async with semaphore:
            replica = self.replicas.acquire(avoid=failed)
            reachable = False
            try:
                answer = await _read_answer(await client.post(self._endpoints[replica.url]).body_json(body).build().send())
                reachable = True
            except self._timeout_error:
                reason = f"timed out after {self.timeout_s}s at {replica.url}"
            except self._transport_error as error:
                reason = self._redact(f"connection error at {replica.url}: {_transport_reason(error)}")
            finally:
                self.replicas.release(replica, reachable=reachable)
        if not reachable:
            failed.add(replica.url)
            failover = self.replicas.another_in_service(failed)
            if failover:
                self.replicas.failovers += 1
            raise TransientError(reason, failover=failover)
        status = answer.status
        if status == 200:
            return answer
        reason = f"HTTP {status} from {replica.url}/chat/completions: {self._excerpt(answer.body)}"
        if status in _RETRYABLE_STATUS or status >= 500:
            retry_after = parse_retry_after(answer.retry_after)
            raise TransientError(reason, status=status, retry_after=retry_after)
        raise BackendError(reason, status=status)

    def _read(self, answer: _HTTPAnswer) -> ChatResponse:
        data = answer.data
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError, AttributeError):  # not JSON (data None), or not a completion
            body = answer.body if data is None else json.dumps(data).encode()
            raise TransientError(f"malformed completion body: {self._excerpt(body)}") from None
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

    async def _attempt(self, request: ChatRequest, failed: set[str]) -> ChatResponse:
        structured = self.structured_output and request.json_schema is not None
        try:
            answer = await self._post(self._body(request, structured), failed)
        except BackendError as error:
            if not (structured and error.status == 400 and "response_format" in str(error)):
                raise
            log.warning("%s rejected response_format; asking for JSON in the prompt only from now on", self.base_url)
            self.structured_output = False
            answer = await self._post(self._body(request, False), failed)
        return self._read(answer)

    # --------------------------------------------------------------------------------------- Backend

    async def chat(self, request: ChatRequest) -> ChatResponse:
        if request.choices is not None:
            raise BackendError(
                f"openai {self.model}: choice scoring (a run's verdict_margin) reads next-token log-probabilities "
                "in-process; use the transformers backend for that role, or leave verdict_margin unset"
            )
        failed: set[str] = set()  # replicas this request could not reach: the next attempt goes elsewhere
        try:
            return await self._attempt(request, failed)
        except TransientError as error:
            return await with_retries(lambda: self._attempt(request, failed), self.policy, what=f"openai {self.model}",
                                      failovers=len(self.replicas) - 1, first_error=error)

    async def identify(self) -> dict[str, Any] | None:
        """What the servers say they serve under ``model``, for provenance, step fingerprints and cache keys:
        the ``root`` (and ``parent``) of its entry in ``GET /models``, where vLLM and SGLang report the path or
        Hub id of the weights. Re-serving other weights under the same name then never reuses an answer.
        ``None`` where no server says more than the name (the OpenAI API, ``transformers serve``). Replicas
        that report different weights under one name are an error; one that cannot be reached is skipped
        (it may come up later, as during the run)."""
        client, _ = self._ensure_client()
        served: dict[str, dict[str, str] | None] = {}
        for replica in self.replicas.replicas:
            try:
                response = await client.get(f"{replica.url}/models").build().send()
                listing = await response.json() if response.status == 200 else None
            except (self._transport_error, ValueError):  # unreachable, or not JSON: nothing said
                continue
            entries = listing.get("data") if isinstance(listing, dict) else None
            entry = next((e for e in entries or () if isinstance(e, dict) and e.get("id") == self.model), None)
            # redacted like an error body: a server may echo the key or a header here, and this is recorded
            weights = {key: self._redact(str(entry[key])) for key in ("root", "parent") if entry and entry.get(key)}
            served[replica.url] = weights or None
        if len({json.dumps(weights, sort_keys=True) for weights in served.values()}) > 1:
            listed = "; ".join(f"{url}: {weights}" for url, weights in served.items())
            raise ValueError(f"backend 'openai' {self.model!r}: the replicas serve different weights under this name "
                             f"({listed}); serve one checkpoint on every replica, or give each its own model name")
        weights = next(iter(served.values()), None)
        return {"served": weights} if weights else None

    def replica_stats(self) -> dict:
        """Counts for a run's report: ``{"replicas": [{url, requests, answered, failures, ejections,
        in_service, outstanding}, ...], "failovers": N}`` (``failovers``: requests re-sent at once to another
        replica after a connection failure or a timeout)."""
        return {"replicas": self.replicas.stats(), "failovers": self.replicas.failovers}

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
            await client.close()
            # pyreqwest's runtime thread still releases the closed connections for a few milliseconds after
            # close() returns; an interpreter that starts finalising meanwhile aborts ("PyGILState_Release:
            # thread state must be current", exit 134): 14-17 of 20 HTTPS client processes did, none with
            # this wait (tests/modelcalls/test_openai_backend.py, the HTTPS test, runs it in subprocesses).
            await asyncio.sleep(_CLOSE_GRACE_S)
        # else: the client belongs to a loop that has ended; its connections are dropped with it

    def __repr__(self) -> str:
        key = f"key from ${self.api_key_env}" if self._api_key else "no key"
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, {key})"
