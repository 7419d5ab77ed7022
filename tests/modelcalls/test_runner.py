"""run_calls: order, bounded concurrency, retry waits that lend their slot, per-item failure capture, parse
retries, usage and progress."""

import asyncio

import pytest

from modelcalls import BackendError, ChatRequest, ChatResponse, Progress, run_calls, run_calls_sync
from modelcalls.base import Usage, message_text
from modelcalls.call import RunSummary
from modelcalls.retry import RetryPolicy, TransientError, with_retries
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
    backend = ScriptedBackend(replies=["not json", "still not json", '{"verdict": "safe"}'], record_requests=True)
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


class _RateLimitedOnce:
    """Answers each item at once, except that the items in ``limited`` are first refused with a 429; the
    retry delay of each refused item is ``waits[item]()`` (the backend's own sleep, under test control).
    Records every request sent and the peak number in flight."""

    model = "rate-limited-once"
    supports_images = False

    def __init__(self, limited: set[str], waits: dict):
        self.limited, self.waits = set(limited), waits
        self.sent: list[str] = []
        self.in_flight = self.peak = 0

    async def chat(self, request: ChatRequest) -> ChatResponse:
        item = message_text(request.messages[-1])

        async def attempt() -> ChatResponse:
            self.sent.append(item)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            await asyncio.sleep(0)
            self.in_flight -= 1
            if item in self.limited:
                self.limited.discard(item)
                raise TransientError("HTTP 429", status=429, retry_after=1.0)
            return ChatResponse(f"answer {item}", Usage(1, 1), "stop")

        async def wait(seconds: float) -> None:
            await self.waits[item](self)

        return await with_retries(attempt, RetryPolicy(max_retries=1), what="test", sleep=wait)

    async def aclose(self) -> None:
        pass


def test_a_call_waiting_out_a_retry_lends_its_slot_to_the_next_items():
    """Item 0 is refused with a 429 and may retry only once every other item is answered: at concurrency
    1 that can only happen if its wait lends the one slot (otherwise the run would wait forever)."""
    items = [str(i) for i in range(5)]
    others_done = asyncio.Event()

    async def until_the_others_are_answered(backend) -> None:
        await others_done.wait()

    backend = _RateLimitedOnce({"0"}, {"0": until_the_others_are_answered})

    def on_result(index, result):
        if backend.sent.count("0") == 1 and len(backend.sent) == len(items):
            others_done.set()

    async def main():
        return await asyncio.wait_for(run_calls(EchoCall(), items, backend, cache=None, concurrency=1,
                                                on_result=on_result), timeout=60)

    results = asyncio.run(main())
    assert [r.output for r in results] == [f"answer {i}" for i in items]
    assert backend.sent == ["0", "1", "2", "3", "4", "0"]  # the others went while 0 waited; 0 re-sent last
    assert backend.peak == 1  # never more than the concurrency in flight, the re-send included
    assert results[0].model_calls == 1 and results[0].attempts == 1  # the 429 was the backend's own retry


def test_at_most_concurrency_calls_wait_without_their_slot():
    """At concurrency 1, item 0 already waits without its slot; item 1's wait then holds the slot: nothing
    else is sent until item 1 has retried (this bounds what a server refusing everything is sent)."""
    others_done = asyncio.Event()
    sent_during_the_second_wait = []

    async def until_the_others_are_answered(backend) -> None:
        await others_done.wait()

    async def while_holding_the_slot(backend) -> None:
        before = len(backend.sent)
        for _ in range(20):  # plenty of loop turns for another worker to send, were the slot lent
            await asyncio.sleep(0)
        sent_during_the_second_wait.extend(backend.sent[before:])

    items = [str(i) for i in range(4)]
    backend = _RateLimitedOnce({"0", "1"}, {"0": until_the_others_are_answered, "1": while_holding_the_slot})

    def on_result(index, result):
        if index == len(items) - 1:
            others_done.set()

    async def main():
        return await asyncio.wait_for(run_calls(EchoCall(), items, backend, cache=None, concurrency=1,
                                                on_result=on_result), timeout=60)

    results = asyncio.run(main())
    assert all(r.ok for r in results)
    assert sent_during_the_second_wait == []
    assert backend.sent == ["0", "1", "1", "2", "3", "0"] and backend.peak == 1
