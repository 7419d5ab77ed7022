"""modelcalls.event_loop.run: every model-call run goes through it; RMS_EVENT_LOOP picks the loop."""

import asyncio

import pytest

from modelcalls import event_loop, run_calls_sync
from modelcalls.scripted_backend import ScriptedBackend

from .helpers import EchoCall


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_auto_runs_on_uvloop_when_it_is_installed(monkeypatch):
    pytest.importorskip("uvloop")
    monkeypatch.delenv(event_loop.ENV, raising=False)
    assert event_loop.loop_name() == "uvloop"
    assert event_loop.run(loop_module()) == "uvloop"


def test_asyncio_forces_the_standard_loop(monkeypatch):
    monkeypatch.setenv(event_loop.ENV, "asyncio")
    assert event_loop.loop_name() == "asyncio"
    assert event_loop.run(loop_module()) == "asyncio"


def test_a_bad_value_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv(event_loop.ENV, "trio")
    with pytest.raises(ValueError, match=r"\$RMS_EVENT_LOOP='trio': expected one of auto, uvloop, asyncio"):
        event_loop.run(loop_module())


@pytest.mark.parametrize("loop", ["asyncio", "auto"])
def test_run_calls_sync_gives_the_same_results_on_either_loop(monkeypatch, loop):
    monkeypatch.setenv(event_loop.ENV, loop)
    results = run_calls_sync(EchoCall(), ["a", "b", "c"], ScriptedBackend(respond=lambda r: r.messages[-1]["content"] * 2),
                             cache=None, concurrency=2)
    assert [r.output for r in results] == ["aa", "bb", "cc"]
