"""CallCache: what enters the key, resume after a restart, sharing between processes, crash safety."""

import os
import signal
import subprocess
import sys
import textwrap

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
    import sys, time
    from modelcalls import CallCache, ChatResponse, Usage
    path, prefix, count, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    cache = CallCache(path)
    for i in range(count):
        cache.put(f"{prefix}-{i}", ChatResponse(f"{prefix} {i}", Usage(1, 1), "stop"))
        print(i, flush=True)
        time.sleep(pause)
    """
)


def _writer(path, prefix, count, pause):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), prefix, str(count), str(pause)],
        cwd=repo, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": repo},
    )


def test_several_processes_share_one_cache_file(tmp_path):
    path = tmp_path / "shared.sqlite"
    writers = [_writer(path, f"w{n}", 50, 0) for n in range(3)]
    for writer in writers:
        writer.communicate(timeout=60)
        assert writer.returncode == 0
    with CallCache(path) as cache:
        assert len(cache) == 150
        assert cache.get("w2-49").text == "w2 49"


def test_a_killed_writer_keeps_every_committed_answer(tmp_path):
    path = tmp_path / "killed.sqlite"
    writer = _writer(path, "k", 10_000, 0.01)
    written = -1
    for line in writer.stdout:
        written = int(line)
        if written >= 20:
            break
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    with CallCache(path) as cache:
        assert len(cache) >= written + 1
        assert cache.get(f"k-{written}").text == f"k {written}"
