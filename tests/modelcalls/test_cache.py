"""CallCache: what enters the key, resume after a restart, sharing between processes, crash safety."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from modelcalls import CallCache, ChatRequest, ChatResponse, Usage, make_backend, run_calls_sync
from modelcalls.base import image_part
from modelcalls.cache import cache_key
from modelcalls.scripted_backend import ScriptedBackend

from .helpers import EchoCall, VerdictCall


def key(request, *, model="m", call_name="scene", template_version="v1"):
    return cache_key(model=model, call_name=call_name, template_version=template_version, request=request)


def request(text="hello", **kwargs):
    return ChatRequest(messages=({"role": "user", "content": text},), **kwargs)


def test_a_hit_after_reopening_the_file_makes_no_model_call(tmp_path):
    path = tmp_path / "cache.sqlite"
    first_backend = ScriptedBackend(respond=lambda r: '{"verdict": "unsafe"}')
    with CallCache(path) as cache:
        first = run_calls_sync(VerdictCall(), ["a knife", "a stove"], first_backend, cache=cache, concurrency=2)
    assert first_backend.calls == 2 and not any(r.cached for r in first)

    second_backend = ScriptedBackend(respond=lambda r: pytest.fail("the model must not be called"))
    with CallCache(path) as reopened:
        second = run_calls_sync(VerdictCall(), ["a knife", "a stove"], second_backend, cache=reopened, concurrency=2)
        assert reopened.hits == 2 and len(reopened) == 2
    assert [r.output for r in second] == ["unsafe", "unsafe"]
    assert all(r.cached and r.model_calls == 0 and r.usage == Usage() for r in second)


def test_cached_answer_keeps_text_usage_and_finish_reason(tmp_path):
    with CallCache(tmp_path / "c.sqlite") as cache:
        cache.put("k", ChatResponse("the text", Usage(11, 4), "length"))
        assert cache.get("k") == ChatResponse("the text", Usage(11, 4), "length", cached=True)
        assert cache.get("missing") is None


def test_key_ignores_concurrency_and_transport_settings(tmp_path):
    path = tmp_path / "cache.sqlite"
    with CallCache(path) as cache:
        run_calls_sync(EchoCall(), ["a", "b", "c"], ScriptedBackend(respond=lambda r: "x", model="gpt-x"), cache=cache, concurrency=1)
    # Same model id, another server, other retries/timeouts/concurrency: every answer is reused.
    backend = make_backend(
        {"backend": "openai", "model": "gpt-x", "base_url": "http://127.0.0.1:9/v1", "max_concurrency": 8,
         "timeout_s": 1, "max_retries": 0}
    )
    with CallCache(path) as cache:
        results = run_calls_sync(EchoCall(), ["a", "b", "c"], backend, cache=cache, concurrency=8, close_backend=True)
    assert [r.output for r in results] == ["x", "x", "x"] and all(r.cached for r in results)


def test_key_changes_with_everything_that_changes_the_answer(jpeg_bytes):
    base = key(request())
    assert key(request()) == base
    assert key(request(), template_version="v2") != base
    assert key(request(), call_name="risks") != base
    assert key(request(), model="other") != base
    assert key(request(temperature=0.7)) != base
    assert key(request(max_tokens=100)) != base
    assert key(request(seed=1)) != base
    assert key(request(json_schema={"type": "object"})) != base
    assert key(request("hello!")) != base


def test_key_hashes_image_bytes(jpeg_bytes):
    def with_image(data):
        return ChatRequest(messages=({"role": "user", "content": [image_part(data), {"type": "text", "text": "hi"}]},))

    red, blue = jpeg_bytes((255, 0, 0)), jpeg_bytes((0, 0, 255))
    assert key(with_image(red)) == key(with_image(red))
    assert key(with_image(red)) != key(with_image(blue))


def test_a_failed_parse_is_not_cached(tmp_path):
    with CallCache(tmp_path / "c.sqlite") as cache:
        backend = ScriptedBackend(replies=["junk", "junk", "junk"])
        [result] = run_calls_sync(VerdictCall(), ["x"], backend, cache=cache, concurrency=1)
        assert not result.ok and len(cache) == 0
        # The next run asks the model again and caches the accepted answer.
        backend = ScriptedBackend(replies=['{"verdict": "safe"}'])
        [result] = run_calls_sync(VerdictCall(), ["x"], backend, cache=cache, concurrency=1)
        assert result.output == "safe" and len(cache) == 1


def test_an_answer_accepted_on_a_parse_retry_is_reused_on_resume(tmp_path):
    with CallCache(tmp_path / "c.sqlite") as cache:
        run_calls_sync(VerdictCall(), ["x"], ScriptedBackend(replies=["junk", '{"verdict": "safe"}']), cache=cache, concurrency=1)
        [again] = run_calls_sync(VerdictCall(), ["x"], ScriptedBackend(replies=[]), cache=cache, concurrency=1)
    assert again.output == "safe" and again.cached


def test_a_corrupt_file_gets_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a usable call cache"):
        CallCache(path)


WRITER = textwrap.dedent(
    """
    import sys
    from modelcalls import CallCache, ChatResponse, Usage
    path, prefix, count, batch, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    cache = CallCache(path, batch_size=batch, max_batch_delay_s=3600)
    for i in range(count):
        cache.put(f"{prefix}-{i}", ChatResponse(f"{prefix} {i} " + "x" * size, Usage(1, 1), "stop"))
        if cache.pending == 0:
            print(i + 1, flush=True)  # answers committed so far
    """
)


def _writer(path, prefix, count, batch=1, size=0):
    """A process putting `count` answers into the cache at `path`, committing every `batch` answers; it
    never calls close(), so what it commits when it ends is the cache's own doing."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), prefix, str(count), str(batch), str(size)],
        cwd=repo, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": repo},
    )


def test_several_processes_share_one_cache_file(tmp_path):
    path = tmp_path / "shared.sqlite"
    writers = [_writer(path, f"w{n}", 50, batch=7) for n in range(3)]  # they open the new file at once
    for writer in writers:
        writer.communicate(timeout=120)
        assert writer.returncode == 0
    with CallCache(path) as cache:
        assert len(cache) == 150  # the last, partial batch of each writer was committed at exit
        assert cache.get("w2-49").text == "w2 49 "


def test_answers_are_committed_in_batches_and_visible_before(tmp_path):
    path = tmp_path / "c.sqlite"
    with CallCache(path, batch_size=4, max_batch_delay_s=3600) as cache:
        for i in range(10):
            cache.put(f"k{i}", ChatResponse(f"answer {i}"))
        assert (cache.commits, cache.writes, cache.pending) == (2, 8, 2)  # one transaction per 4 answers
        assert cache.get("k9").text == "answer 9" and len(cache) == 10  # a queued answer is served already
        with sqlite3.connect(path) as other:  # another process sees the committed batches only
            assert other.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 8
    with sqlite3.connect(path) as other:  # close() committed the rest
        assert other.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 10


def test_a_slow_trickle_of_answers_is_committed_without_waiting_for_a_full_batch(tmp_path):
    with CallCache(tmp_path / "c.sqlite", batch_size=1000, max_batch_delay_s=0) as cache:
        cache.put("a", ChatResponse("one"))
        cache.put("b", ChatResponse("two"))
        assert cache.pending == 0 and cache.commits == 2


def test_run_calls_commits_its_last_batch_when_it_ends(tmp_path):
    path = tmp_path / "c.sqlite"
    with CallCache(path, batch_size=1000, max_batch_delay_s=3600) as cache:
        run_calls_sync(EchoCall(), ["a", "b", "c"], ScriptedBackend(respond=lambda r: "x"), cache=cache, concurrency=2)
        assert cache.pending == 0 and cache.commits == 1
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 3


def test_opening_waits_for_another_process_holding_the_file(tmp_path):
    path = tmp_path / "busy.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # e.g. another shard creating the file or recovering its WAL
    threading.Timer(0.5, holder.rollback).start()
    with CallCache(path, busy_timeout_s=30) as cache:  # waits, then opens
        cache.put("k", ChatResponse("fine"))
    holder.close()
    with CallCache(path) as cache:
        assert cache.get("k").text == "fine"


def test_a_file_locked_past_the_busy_timeout_is_a_clear_error(tmp_path):
    path = tmp_path / "held.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TimeoutError, match="still locked by another process after 0.2 s"):
            CallCache(path, busy_timeout_s=0.2)
    finally:
        holder.rollback()
        holder.close()


def _committed_answers(process) -> int:
    """Read the writer's progress lines until it has committed a few batches."""
    for line in process.stdout:
        if int(line) >= 3 * 500:
            return int(line)
    raise AssertionError("the writer ended early")


def test_a_killed_writer_keeps_every_committed_batch(tmp_path):
    path = tmp_path / "killed.sqlite"
    writer = _writer(path, "k", 10_000_000, batch=500)
    committed = _committed_answers(writer)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    with CallCache(path) as cache:
        assert len(cache) >= committed and len(cache) % 500 == 0  # whole batches, nothing torn
        assert cache.get(f"k-{committed - 1}").text == f"k {committed - 1} "


def test_a_writer_killed_in_the_middle_of_batch_commits_leaves_a_valid_file(tmp_path):
    path = tmp_path / "torn.sqlite"
    rng = random.Random(11)
    for round_number in range(4):
        # Batches of 500 answers of 4 KB: most of the writer's time is spent inside a commit.
        writer = _writer(path, f"r{round_number}", 10_000_000, batch=500, size=4000)
        _committed_answers(writer)
        time.sleep(rng.uniform(0, 0.3))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            for prefix in {f"r{n}" for n in range(round_number + 1)}:
                rows = db.execute("SELECT COUNT(*) FROM calls WHERE key LIKE ?", (f"{prefix}-%",)).fetchone()[0]
                assert rows % 500 == 0 and rows >= 1500  # every batch whole or absent


def test_get_many_serves_queued_and_committed_answers_in_chunks_of_queries(tmp_path):
    with CallCache(tmp_path / "c.sqlite", batch_size=1000, max_batch_delay_s=3600) as cache:
        for i in range(1200):
            cache.put(f"k{i}", ChatResponse(f"answer {i}", Usage(3, i)))
        cache.flush()  # committed: looked up with one query per 500 keys
        cache.put("queued", ChatResponse("not committed yet"))
        keys = [f"k{i}" for i in range(1200)] + ["queued", "never-asked"]
        answers = cache.get_many(keys)
    assert len(answers) == 1201 and "never-asked" not in answers
    assert answers["k1199"] == ChatResponse("answer 1199", Usage(3, 1199), cached=True)
    assert answers["queued"].text == "not committed yet" and answers["queued"].cached
    assert (cache.hits, cache.misses) == (1201, 1)


def test_a_resumed_run_is_served_by_batched_lookups(tmp_path):
    path = tmp_path / "c.sqlite"
    items = [f"item {i}" for i in range(300)]
    with CallCache(path) as cache:
        run_calls_sync(EchoCall(), items, ScriptedBackend(respond=lambda r: r.messages[-1]["content"]), cache=cache,
                       concurrency=8)
    with CallCache(path) as cache:
        again = run_calls_sync(EchoCall(), items, ScriptedBackend(respond=lambda r: pytest.fail("no model call")),
                               cache=cache, concurrency=8)
        assert (cache.hits, cache.misses) == (300, 0)
    assert [r.output for r in again] == items and all(r.cached for r in again)
