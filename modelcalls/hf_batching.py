"""Batching concurrent ``chat()`` calls for an in-process model: requests that arrive together and share
their generation settings (`batch_key`) are cut into batches of up to ``batch_size``, prepared (rendered)
and run in a worker thread, so the event loop keeps going. A request that cannot be prepared fails alone;
a batch that fails fails its own calls and the others keep being served."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelcalls.base import BackendError, ChatRequest, ChatResponse


def batch_key(request: ChatRequest) -> tuple:
    """Requests generated together must share these settings (the seed only matters when sampling);
    choice-scoring requests are batched only with each other."""
    if request.choices is not None:
        return ("score",)
    sampling = request.temperature > 0
    return (request.max_tokens, request.temperature, request.seed if sampling else None)


@dataclass
class _Pending:
    request: ChatRequest
    future: asyncio.Future


class RequestBatcher:
    """``await submit(request)`` answers one request; ``prepare(requests)`` gives each request's prepared
    form or its own ``BackendError``, ``run(requests, prepared)`` answers one batch (both run in a thread)."""

    def __init__(self, batch_size: int, prepare: Callable[[list[ChatRequest]], list[Any]],
                 run: Callable[[list[ChatRequest], list[Any]], list[ChatResponse]], name: str):
        self.batch_size = batch_size
        self._prepare = prepare
        self._run = run
        self._name = name
        self._pending: list[_Pending] = []
        self._task: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, request: ChatRequest) -> ChatResponse:
        self._ensure_running()
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(request, future))
        self._wakeup.set()
        return await future

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._loop is not loop or self._task.done():
            self._loop = loop
            self._pending = []
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._serve())

    def _next_batch(self) -> list[_Pending]:
        key = batch_key(self._pending[0].request)
        batch = [p for p in self._pending if batch_key(p.request) == key][: self.batch_size]
        taken = set(map(id, batch))
        self._pending = [p for p in self._pending if id(p) not in taken]
        return batch

    async def _serve(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Let every coroutine that is ready right now submit its request before cutting a batch.
            for _ in range(3):
                await asyncio.sleep(0)
            while self._pending:
                await self._answer(self._next_batch())

    async def _answer(self, batch: list[_Pending]) -> None:
        prepared = await asyncio.to_thread(self._prepare, [p.request for p in batch])
        for pending, item in zip(batch, prepared):
            if isinstance(item, BackendError) and not pending.future.done():
                pending.future.set_exception(item)
        good = [(p, item) for p, item in zip(batch, prepared) if not isinstance(item, BackendError)]
        if not good:
            return
        batch = [p for p, _ in good]
        try:
            responses = await asyncio.to_thread(self._run, [p.request for p in batch], [item for _, item in good])
        except Exception as error:  # fail this batch's calls, keep serving the others
            failure = error if isinstance(error, BackendError) else BackendError(
                f"{self._name}: generation failed: {type(error).__name__}: {error}"
            )
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(failure)
            return
        for pending, response in zip(batch, responses):
            if not pending.future.done():
                pending.future.set_result(response)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = None
