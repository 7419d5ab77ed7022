"""``run(coro)``: the one way this project runs a coroutine from synchronous code (a pipeline run, an eval
run, ``run_calls_sync``), on uvloop when it is installed.

Why uvloop: the call layer is CPU-bound on its event-loop thread long before a fleet of model servers is
(one Python thread drives every request). Measured side by side against the 50 ms stub at concurrency 256
(``bench/generation_calls.py``, BENCHMARKS.md), uvloop cuts the client CPU per call of ``run_calls`` +
``OpenAIBackend`` by 9-36 us (153 against 162-189 us) and of a bare aiohttp loop by 53-65 us, which is that
much more throughput where one core is the limit. Results do not depend on the loop: every answer, key and checkpoint is the
same on both.

``RMS_EVENT_LOOP`` chooses: ``auto`` (default: uvloop if importable, else asyncio's own loop), ``uvloop``
(fail if it is not installed) or ``asyncio``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "RMS_EVENT_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")


def _uvloop():
    """The uvloop module if ``RMS_EVENT_LOOP`` asks for it (and it is importable), else ``None``."""
    choice = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"${ENV}={os.environ[ENV]!r}: expected one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ValueError(f"${ENV}=uvloop but uvloop is not installed: pip install uvloop (or unset {ENV})") from None
        return None
    return uvloop


def loop_name() -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop ``run`` would use now (for reports and benchmarks)."""
    return "asyncio" if _uvloop() is None else "uvloop"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on the loop ``RMS_EVENT_LOOP`` chooses (not from inside a running loop)."""
    try:
        uvloop = _uvloop()
    except ValueError:
        coro.close()  # never awaited: no "coroutine was never awaited" warning on top of the error
        raise
    return asyncio.run(coro) if uvloop is None else uvloop.run(coro)
