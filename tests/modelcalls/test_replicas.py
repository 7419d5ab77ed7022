"""Several replicas per role: least-outstanding choice, ejection and return of a failing replica, failover
of a run to the replicas that still answer, and 429 answers without a retry storm. The servers are the
benchmark's stub (bench/stub_server.py), each in its own process on 127.0.0.1."""

import importlib.util
import json
from pathlib import Path

import pytest

from modelcalls import CallCache, ChatRequest, ChatResponse, ModelCall, make_backend, run_calls_sync
from modelcalls.replicas import ReplicaPool

from .conftest import free_port

_spec = importlib.util.spec_from_file_location("stub_server", Path(__file__).parents[2] / "bench" / "stub_server.py")
stub_server = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stub_server)


class ItemCall(ModelCall[str, str]):
    """The stub answers {"item": <last word of the prompt>}: parse returns it, so a mixed-up answer shows."""

    name = "item"
    template_version = "v1"

    def request(self, item: str) -> ChatRequest:
        return ChatRequest(messages=({"role": "user", "content": f"Tell me the item: {item}"},), max_tokens=8)

    def parse(self, item: str, response: ChatResponse) -> str:
        return json.loads(response.text)["item"]


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_go_to_the_replica_with_the_fewest_outstanding():
    pool = ReplicaPool(["http://a/v1", "http://b/v1", "http://c/v1"])
    first, second, third = pool.acquire(), pool.acquire(), pool.acquire()
    assert {first.url, second.url, third.url} == {"http://a/v1", "http://b/v1", "http://c/v1"}
    pool.release(second, reachable=True)
    assert pool.acquire() is second  # the only one with nothing outstanding
    pool.release(first, reachable=True)
    pool.release(third, reachable=True)
    pool.release(second, reachable=True)
    picks = [pool.acquire() for _ in range(3)]  # all idle: the one picked longest ago first
    assert [p.url for p in picks] == ["http://a/v1", "http://c/v1", "http://b/v1"]


def _acquire(pool, replica):
    """Send a request to this very replica (as acquire() does for the one it picks)."""
    replica.outstanding += 1
    replica.requests += 1
    return replica


def test_a_replica_failing_in_a_row_is_taken_out_then_tried_again_later():
    clock = FakeClock()
    pool = ReplicaPool(["http://a/v1", "http://b/v1"], eject_after=3, eject_for_s=10, clock=clock)
    a = pool.replicas[0]
    for _ in range(3):
        pool.release(_acquire(pool, a), reachable=False)
    assert a.ejections == 1 and not a.in_service(clock.now)
    assert all(pool.acquire().url == "http://b/v1" for _ in range(5))  # out of service: never picked
    clock.now += 10.5
    assert a.in_service(clock.now)  # due back: tried again
    pool.release(_acquire(pool, a), reachable=False)  # fails again: out for twice as long
    assert a.ejections == 2 and a.out_until == pytest.approx(clock.now + 20)
    clock.now += 21
    pool.release(_acquire(pool, a), reachable=True)  # one answer puts it back for good
    assert a.failures_in_a_row == 0 and a.in_service(clock.now)


def test_http_errors_do_not_count_against_a_replica():
    pool = ReplicaPool(["http://a/v1"], eject_after=1)
    replica = pool.acquire()
    pool.release(replica, reachable=True)  # e.g. a 429 or a 500: the server is there
    assert replica.ejections == 0 and replica.failures == 0


def test_when_every_replica_is_out_the_one_due_back_first_is_used():
    clock = FakeClock()
    pool = ReplicaPool(["http://a/v1", "http://b/v1"], eject_after=1, eject_for_s=10, clock=clock)
    a, b = pool.replicas
    pool.release(_acquire(pool, a), reachable=False)
    clock.now += 1
    pool.release(_acquire(pool, b), reachable=False)
    assert pool.acquire() is a


def test_base_url_may_be_a_list_and_bad_lists_are_clear_errors():
    backend = make_backend({"backend": "openai", "model": "m", "base_url": ["http://127.0.0.1:1/v1/", "http://127.0.0.1:2/v1"]})
    assert [r.url for r in backend.replicas.replicas] == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    assert backend.replica_stats()["failovers"] == 0
    with pytest.raises(ValueError, match="base_url must be an http"):
        make_backend({"backend": "openai", "model": "m", "base_url": []})
    with pytest.raises(ValueError, match="base_url must be an http"):
        make_backend({"backend": "openai", "model": "m", "base_url": ["127.0.0.1:8000"]})
    with pytest.raises(ValueError, match="lists a replica twice"):
        make_backend({"backend": "openai", "model": "m", "base_url": ["http://h/v1", "http://h/v1/"]})


def _run(urls, items, tmp_path, **options):
    backend = make_backend({"backend": "openai", "model": "stub", "base_url": urls, "max_concurrency": 8,
                            "retry_base_delay_s": 0.01, "timeout_s": 30, **options})
    with CallCache(tmp_path / "calls.sqlite") as cache:
        results = run_calls_sync(ItemCall(), items, backend, cache=cache, concurrency=8)
        stored = len(cache)
    return backend, results, stored


def test_a_replica_stopped_mid_run_fails_over_and_every_item_completes_once(tmp_path):
    items = [f"#{i}" for i in range(160)]
    with stub_server.StubProcess(delay_ms=5) as steady, stub_server.StubProcess(delay_ms=5, stop_after=30) as dying:
        backend, results, stored = _run([steady.base_url, dying.base_url], items, tmp_path)
        steady_answered = steady.stats()["answered"]
    assert [r.error for r in results if not r.ok] == []
    assert [r.output for r in results] == items  # every answer belongs to its item
    assert stored == len(items)  # one cached answer per item: none twice
    stats = backend.replica_stats()
    kept, stopped = stats["replicas"]
    assert (kept["url"], stopped["url"]) == (steady.base_url, dying.base_url)
    assert stopped["answered"] <= 30 + 8 and stopped["failures"] >= 1 and stopped["ejections"] >= 1
    assert not stopped["in_service"]
    assert steady_answered >= len(items) - stopped["answered"]
    assert stats["failovers"] >= 1


def test_a_replica_refusing_connections_from_the_start_is_taken_out(tmp_path):
    items = [f"#{i}" for i in range(40)]
    refusing = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with stub_server.StubProcess() as steady:
        backend, results, _ = _run([refusing, steady.base_url], items, tmp_path, max_retries=0)
    assert [r.output for r in results] == items  # no retries needed: failover is immediate
    refused = backend.replica_stats()["replicas"][0]
    assert refused["ejections"] == 1 and refused["answered"] == 0 and refused["failures"] >= 3


def test_rate_limited_requests_are_resent_once_each_after_retry_after(tmp_path):
    items = [f"#{i}" for i in range(120)]
    with stub_server.StubProcess(rate_limited=0.3, retry_after=0.05, seed=3) as server:
        _, results, _ = _run(server.base_url, items, tmp_path, max_retries=8)
        stats = server.stats()
    assert [r.output for r in results] == items
    assert stats["rate_limited"] > 0
    # No retry storm: every 429 costs exactly one more request, and nothing else is re-sent.
    assert stats["answered"] == len(items) and stats["requests"] == len(items) + stats["rate_limited"]
