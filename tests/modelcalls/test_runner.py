"""run_calls: order, bounded concurrency, per-item failure capture, parse retries, usage and progress."""

import asyncio

import pytest

from modelcalls import BackendError, ChatRequest, Progress, run_calls, run_calls_sync
from modelcalls.base import message_text
from modelcalls.call import RunSummary
from modelcalls.scripted_backend import Fault, ScriptedBackend

from .helpers import EchoCall, VerdictCall


def test_results_keep_input_order_even_when_later_items_finish_first():
    async def respond(request: ChatRequest) -> str:
        number = int(message_text(request.messages[-1]))
        await asyncio.sleep(0.002 * (10 - number))  # item 0 is the slowest
        return f"answer {number}"

    backend = ScriptedBackend(respond=respond)
    results = run_calls_sync(EchoCall(), [str(i) for i in range(10)], backend, cache=None, concurrency=10)
    assert [r.output for r in results] == [f"answer {i}" for i in range(10)]
    assert [r.item for r in results] == [str(i) for i in range(10)]


def test_never_more_calls_in_flight_than_the_concurrency():
    in_flight = 0
    peak = 0

    async def respond(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return "x"

    run_calls_sync(EchoCall(), ["a"] * 40, ScriptedBackend(respond=respond), cache=None, concurrency=3)
    assert peak == 3


def test_failures_are_recorded_per_item_with_reasons_and_the_run_goes_on():
    def respond(request):
        text = message_text(request.messages[-1])
        if "knife" in text:
            return '{"verdict": "unsafe"}'
        if "rate" in text:
            return Fault.rate_limited(retry_after=0)
        if "refuse" in text:
            return Fault.refusal()
        if "cut" in text:
            return Fault.truncated_json()
        return '{"verdict": "safe"}'

    items = ["a knife", "rate limited", "please refuse", "cut short", "a library"]
    results = run_calls_sync(VerdictCall(), items, ScriptedBackend(respond=respond), cache=None, concurrency=2)

    assert [r.output for r in results] == ["unsafe", None, None, None, "safe"]
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert results[1].error.startswith("BackendError:") and "HTTP 429" in results[1].error
    assert "no JSON object" in results[2].error and "after 3 attempts" in results[2].error
    assert "cut at max_tokens" in results[3].error
    assert results[2].attempts == 3 and results[2].model_calls == 3  # 1 + max_parse_retries


def test_parse_retries_use_a_new_seed_and_a_sampling_temperature_then_succeed():
    backend = ScriptedBackend(replies=["not json", "still not json", '{"verdict": "safe"}'])
    [result] = run_calls_sync(VerdictCall(), ["a cup"], backend, cache=None, concurrency=1)
    assert result.output == "safe" and result.attempts == 3
    seeds = [r.seed for r in backend.requests]
    temperatures = [r.temperature for r in backend.requests]
    assert seeds == [0, 1, 2]
    assert temperatures == [0.0, VerdictCall.retry_temperature, VerdictCall.retry_temperature]


def test_exceptions_in_request_or_parse_become_item_errors():
    class Fragile(EchoCall):
        def request(self, item):
            if item == "bad":
                raise KeyError("image_path")
            return super().request(item)

        def parse(self, item, response):
            if item == "boom":
                raise ZeroDivisionError("division by zero")
            return response.text

    results = run_calls_sync(Fragile(), ["bad", "boom", "ok"], ScriptedBackend(respond=lambda r: "fine"), cache=None, concurrency=2)
    assert results[0].error == "request() failed: KeyError: 'image_path'" and results[0].model_calls == 0
    assert results[1].error == "parse() failed: ZeroDivisionError: division by zero"
    assert results[2].output == "fine"


def test_usage_is_summed_per_item_and_per_run_and_progress_counts_everything():
    backend = ScriptedBackend(replies=["x", "y"] + [Fault.rate_limited(0)])
    progress = Progress(total=3, disable=True)
    results = run_calls_sync(EchoCall(), ["one two", "three", "four"], backend, cache=None, concurrency=1, progress=progress)
    summary = progress.summary
    assert (summary.done, summary.accepted, summary.rejected, summary.cached) == (3, 2, 1, 0)
    assert summary.usage == results[0].usage + results[1].usage
    assert summary.usage.prompt_tokens == len("one two".split()) + len("three".split())
    assert RunSummary.of(results) == summary


def test_on_result_sees_each_item_as_it_finishes():
    seen = {}
    run_calls_sync(
        EchoCall(), ["a", "b", "c"], ScriptedBackend(respond=lambda r: "z"), cache=None, concurrency=2,
        on_result=lambda index, result: seen.__setitem__(index, result.item),
    )
    assert seen == {0: "a", 1: "b", 2: "c"}


def test_a_call_without_name_or_template_version_is_refused():
    class Nameless(EchoCall):
        name = ""

    with pytest.raises(ValueError, match="must set 'name' and 'template_version'"):
        run_calls_sync(Nameless(), ["a"], ScriptedBackend(respond=lambda r: "x"), cache=None, concurrency=1)


def test_empty_input_gives_empty_results():
    assert run_calls_sync(EchoCall(), [], ScriptedBackend(respond=lambda r: "x"), cache=None, concurrency=4) == []


def test_run_calls_is_usable_inside_a_running_loop():
    async def main():
        backend = ScriptedBackend(respond=lambda r: "x")
        return await run_calls(EchoCall(), ["a", "b"], backend, cache=None, concurrency=2)

    assert [r.output for r in asyncio.run(main())] == ["x", "x"]


def test_backend_error_is_the_final_failure_after_the_backends_own_retries():
    backend = ScriptedBackend(replies=[Fault.server_error(503), Fault.timeout(), "ok"], max_retries=2)
    [result] = run_calls_sync(EchoCall(), ["a"], backend, cache=None, concurrency=1)
    assert result.output == "ok" and backend.calls == 3

    backend = ScriptedBackend(replies=[Fault.server_error(500)] * 3, max_retries=2)
    [result] = run_calls_sync(EchoCall(), ["a"], backend, cache=None, concurrency=1)
    assert result.error.startswith("BackendError: scripted scripted: gave up after 3 attempts; last error: HTTP 500")


def test_scripted_bad_request_is_not_retried():
    backend = ScriptedBackend(replies=[Fault.bad_request(), "never reached"], max_retries=5)
    with pytest.raises(BackendError, match="HTTP 400"):
        asyncio.run(backend.chat(ChatRequest(messages=({"role": "user", "content": "x"},))))
    assert backend.calls == 1


def test_a_request_with_a_broken_image_is_rejected_not_fatal(tmp_path):
    from modelcalls import CallCache

    class BrokenImage(EchoCall):
        def request(self, item):
            part = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,@@not base64@@"}}
            return ChatRequest(messages=({"role": "user", "content": [part]},)) if item == "broken" else super().request(item)

    with CallCache(tmp_path / "c.sqlite") as cache:
        results = run_calls_sync(BrokenImage(), ["broken", "fine"], ScriptedBackend(respond=lambda r: "x"), cache=cache, concurrency=2)
    assert "not valid base64" in results[0].error and results[1].output == "x"
