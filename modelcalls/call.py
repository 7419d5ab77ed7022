"""One model call = ``request()`` + ``parse()`` (bespoke-curator style), and the runner that maps a call
over many items concurrently with caching, parse retries and per-item error capture.

A pipeline step subclasses ``ModelCall``::

    class SceneCall(ModelCall[Photo, Scene]):
        name = "scene"
        template_version = "scene-v1"

        def request(self, item):
            return ChatRequest(messages=(...,), json_schema=SCENE_SCHEMA)

        def parse(self, item, response):
            data = parse_json(response.text)      # raises ParseError on bad JSON
            return Scene(...)

    results = run_calls_sync(SceneCall(), photos, backend, cache=CallCache("run/cache.sqlite"), concurrency=16)

``run_calls`` never raises for one item's failure: a ``BackendError`` (after the backend's own retries),
a ``ParseError`` after ``max_parse_retries`` extra attempts, or any exception from ``request()``/``parse()``
becomes ``CallResult(output=None, error="...")`` in the item's position.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from modelcalls import event_loop
from modelcalls.base import Backend, BackendError, ChatRequest, ChatResponse, Usage
from modelcalls.cache import CallCache
from modelcalls.retry import retry_wait

log = logging.getLogger(__name__)

# Items prepared (request built, cache key computed, one cache lookup) at a time: the concurrency, within
# these bounds. Preparing a chunk holds the event loop (~25 us an item), delaying every answer that arrives
# meanwhile: at concurrency 256, chunks of 32 reached 0.85-0.88 of the physical limit where chunks of 256
# reached 0.80-0.81 (BENCHMARKS.md); a chunk of image requests also holds their inline images until sent.
_MIN_LOOKUP_CHUNK, _MAX_LOOKUP_CHUNK = 16, 32

In = TypeVar("In")
Out = TypeVar("Out")


class ParseError(ValueError):
    """``parse()`` could not read the model's answer. The runner retries the call (bounded), then records
    the item as rejected with this message as the reason."""


class ModelCall(ABC, Generic[In, Out]):
    """A model call: ``request(item)`` builds the chat request, ``parse(item, response)`` reads the answer.

    ``name`` and ``template_version`` enter the cache key: bump ``template_version`` whenever the prompt
    changes so that old answers are not reused.
    """

    name: str = ""
    template_version: str = ""
    max_parse_retries: int = 2  # extra attempts after a ParseError, each with a new seed
    retry_temperature: float = 0.7  # a greedy (temperature 0) request is retried at this temperature

    @abstractmethod
    def request(self, item: In) -> ChatRequest: ...

    @abstractmethod
    def parse(self, item: In, response: ChatResponse) -> Out: ...

    def retry_request(self, request: ChatRequest, attempt: int) -> ChatRequest:
        """The request for retry number ``attempt`` (1, 2, ...) after a parse failure: a new seed, and a
        non-zero temperature if the first was greedy (a greedy retry would repeat the same answer)."""
        seed = (request.seed or 0) + attempt
        temperature = request.temperature if request.temperature > 0 else self.retry_temperature
        return replace(request, seed=seed, temperature=temperature)


@dataclass
class CallResult(Generic[In, Out]):
    item: In
    output: Out | None
    error: str | None
    usage: Usage  # tokens spent by live model calls for this item in this run (cache hits cost nothing)
    cached: bool  # the accepted answer came from the cache
    attempts: int  # answers parsed (a cache hit counts as one)
    model_calls: int = 0  # live backend calls made for this item

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RunSummary:
    done: int = 0
    accepted: int = 0
    rejected: int = 0
    cached: int = 0
    model_calls: int = 0
    usage: Usage = field(default_factory=Usage)

    def add(self, result: CallResult) -> None:
        self.done += 1
        self.accepted += result.ok
        self.rejected += not result.ok
        self.cached += result.cached
        self.model_calls += result.model_calls
        self.usage = self.usage + result.usage

    @classmethod
    def of(cls, results: Iterable[CallResult]) -> RunSummary:
        summary = cls()
        for result in results:
            summary.add(result)
        return summary


class Progress:
    """A tqdm bar showing done / accepted / rejected / cached counts and token totals.

    ``Progress(total, desc="scene")``; pass ``disable=True`` (or run without a terminal) to keep only the
    counts in ``.summary``.
    """

    def __init__(self, total: int | None = None, desc: str = "", *, disable: bool | None = None, **tqdm_kwargs):
        from tqdm.auto import tqdm

        self.summary = RunSummary()
        self._bar = tqdm(total=total, desc=desc, disable=disable, mininterval=0.5, unit="call", **tqdm_kwargs)

    def update(self, result: CallResult) -> None:
        self.summary.add(result)
        s = self.summary
        self._bar.set_postfix_str(
            f"ok={s.accepted} rej={s.rejected} cached={s.cached} "
            f"tok={s.usage.prompt_tokens}+{s.usage.completion_tokens}",
            refresh=False,
        )
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _describe(error: BaseException) -> str:
    """``"ParseError: no JSON object ..."``: the exception type and its message, for CallResult.error."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


_NO_USAGE = Usage()  # frozen: one shared zero for items that made no live call


@dataclass(slots=True)
class _Prepared:
    """One item before its model call: its request and cache key, the cached answer if there is one, or
    the ``CallResult`` that already ends it (``request()`` failed)."""

    index: int
    item: object
    request: ChatRequest | None = None
    key: str | None = None
    hit: ChatResponse | None = None
    done: CallResult | None = None


def _prepare(call: ModelCall, index: int, item, model_id: str, cache: CallCache | None) -> _Prepared:
    try:
        request = call.request(item)
        if not request.name:
            request = request.named(call.name)
    except Exception as error:  # a bad item must not kill the run
        return _Prepared(index, item, done=CallResult(item, None, f"request() failed: {_describe(error)}", _NO_USAGE, False, 0, 0))
    if cache is None:
        return _Prepared(index, item, request)
    try:
        key = cache.key(model=model_id, call_name=call.name, template_version=call.template_version, request=request)
    except ValueError as error:  # e.g. an image part whose data URL is not base64
        return _Prepared(index, item, done=CallResult(item, None, f"request() built a bad request: {error}", _NO_USAGE, False, 0, 0))
    return _Prepared(index, item, request, key)


def _prepared_feed(call: ModelCall, items: list, model_id: str, cache: CallCache | None,
                   chunk: int) -> Iterator[_Prepared]:
    """The items in order, prepared ``chunk`` at a time: one cache lookup per chunk (``get_many``) instead
    of one query per item. Consumed by the workers of one ``run_calls`` (one thread, so never re-entered)."""
    for start in range(0, len(items), chunk):
        batch = [_prepare(call, index, items[index], model_id, cache)
                 for index in range(start, min(start + chunk, len(items)))]
        if cache is not None:
            hits = cache.get_many([p.key for p in batch if p.key is not None])
            for prepared in batch:
                prepared.hit = hits.get(prepared.key)
        yield from batch


async def _run_one(call: ModelCall, prepared: _Prepared, backend: Backend, cache: CallCache | None,
                   model_id: str) -> CallResult:
    if prepared.done is not None:
        return prepared.done
    item, request, key = prepared.item, prepared.request, prepared.key
    usage = _NO_USAGE
    attempts = 0
    model_calls = 0
    if prepared.hit is not None:
        attempts += 1
        try:
            return CallResult(item, call.parse(item, prepared.hit), None, usage, True, attempts, 0)
        except ParseError:
            pass  # the parser got stricter since this answer was cached: ask the model again
        except Exception as error:
            return CallResult(item, None, f"parse() failed: {_describe(error)}", usage, True, attempts, 0)

    last_error = "no attempt made"
    for attempt in range(call.max_parse_retries + 1):
        live_request = request if attempt == 0 else call.retry_request(request, attempt)
        try:
            response = await backend.chat(live_request)
        except BackendError as error:
            return CallResult(item, None, _describe(error), usage, False, attempts, model_calls + 1)
        except Exception as error:
            return CallResult(
                item, None, f"backend failed: {_describe(error)}", usage, False, attempts, model_calls + 1
            )
        usage = response.usage if model_calls == 0 else usage + response.usage
        model_calls += 1
        attempts += 1
        try:
            output = call.parse(item, response)
        except ParseError as error:
            last_error = _describe(error)
            continue
        except Exception as error:
            return CallResult(item, None, f"parse() failed: {_describe(error)}", usage, False, attempts, model_calls)
        if cache is not None:
            # Stored under the first request's key, so a rerun is served this accepted answer directly;
            # committed with its batch (group commit), at the latest when the run ends.
            try:
                cache.put(key, response, call_name=call.name, model=model_id)
            except sqlite3.Error as error:  # keep the answer; only a rerun pays for it again
                log.warning("%s: could not cache an answer of %r (%s)", cache.path, call.name, error)
        return CallResult(item, output, None, usage, False, attempts, model_calls)
    return CallResult(
        item, None, f"{last_error} (after {attempts} attempts)", usage, False, attempts, model_calls
    )


async def run_calls(
    call: ModelCall[In, Out],
    items: Sequence[In] | Iterable[In],
    backend: Backend,
    *,
    cache: CallCache | None,
    concurrency: int,
    progress: Progress | None = None,
    on_result: Callable[[int, CallResult[In, Out]], None] | None = None,
    model_id: str | None = None,
) -> list[CallResult[In, Out]]:
    """Run ``call`` on every item with at most ``concurrency`` calls in flight; results in input order.

    A call waiting out a retry delay (a 429's ``Retry-After``, a backoff) lends its slot to the next item
    meanwhile and queues for a slot again before it re-sends, so the server keeps ``concurrency`` requests
    and the run keeps going; at most ``concurrency`` calls wait this way at once (then a wait holds its slot,
    which bounds both the items held in memory and what a server refusing everything is sent).

    ``on_result(index, result)`` is called as each item finishes (e.g. to append it to a JSONL file).
    ``model_id`` names the model in cache keys (default ``backend.model``): give what identifies the
    answering weights when the name alone does not (an endpoint, a weights fingerprint).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if not call.name or not call.template_version:
        raise ValueError(
            f"{type(call).__name__} must set 'name' and 'template_version' (both are part of the cache key)"
        )
    items = list(items)
    results: list[CallResult | None] = [None] * len(items)
    model_id = backend.model if model_id is None else model_id
    feed = _prepared_feed(call, items, model_id, cache, chunk=min(max(concurrency, _MIN_LOOKUP_CHUNK), _MAX_LOOKUP_CHUNK))

    slots = asyncio.Semaphore(concurrency)
    workers: list[asyncio.Task] = []
    waiting = 0  # calls waiting out a retry delay without a slot

    async def wait_without_slot(delay) -> None:
        nonlocal waiting
        if waiting >= concurrency:
            await delay  # holding the slot
            return
        waiting += 1
        slots.release()
        if len(workers) < 2 * concurrency:  # a worker to take the lent slot
            workers.append(asyncio.ensure_future(worker()))
        try:
            await delay
        finally:
            waiting -= 1
        await slots.acquire()  # in line for a slot again before re-sending

    async def worker() -> None:
        retry_wait.set(wait_without_slot)  # in this worker's context only
        for prepared in feed:
            async with slots:
                result = await _run_one(call, prepared, backend, cache, model_id)
            results[prepared.index] = result
            if progress is not None:
                progress.update(result)
            if on_result is not None:
                on_result(prepared.index, result)

    workers.extend(asyncio.ensure_future(worker()) for _ in range(min(concurrency, max(len(items), 1))))
    try:
        finished = 0
        while finished < len(workers):  # workers started while others wait join the list
            await workers[finished]
            finished += 1
    except BaseException:
        for task in workers:
            task.cancel()
        raise
    finally:
        if cache is not None:  # commit the last batch of answers (the cache commits in groups)
            try:
                cache.flush()
            except sqlite3.Error as error:
                log.warning("%s: could not commit the last answers (%s); a rerun asks for them again", cache.path, error)
    return results  # type: ignore[return-value]


def run_calls_sync(
    call: ModelCall[In, Out],
    items: Sequence[In] | Iterable[In],
    backend: Backend,
    *,
    cache: CallCache | None,
    concurrency: int,
    progress: Progress | None = None,
    on_result: Callable[[int, CallResult[In, Out]], None] | None = None,
    close_backend: bool = True,
    model_id: str | None = None,
) -> list[CallResult[In, Out]]:
    """``run_calls`` for synchronous code (not from inside a running loop), on the event loop
    ``modelcalls.event_loop.run`` chooses (uvloop when installed).

    By default ``backend.aclose()`` runs before the loop ends: HTTP connections and batching tasks are
    bound to the loop that made them. Every backend here reopens them lazily, so the same backend object
    serves the next ``run_calls_sync`` (the next pipeline step) as well."""

    async def main():
        try:
            return await run_calls(
                call, items, backend, cache=cache, concurrency=concurrency, progress=progress, on_result=on_result,
                model_id=model_id,
            )
        finally:
            if close_backend:
                await backend.aclose()

    return event_loop.run(main())
