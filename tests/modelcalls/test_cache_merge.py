"""Joining the call caches of several shards: every answer reused, the target's answer kept on a clash,
sources untouched, bad input one clear line."""

import subprocess
import sys
from pathlib import Path

from modelcalls import CallCache, ChatResponse, Usage, run_calls_sync
from modelcalls.cache_merge import merge_caches
from modelcalls.scripted_backend import ScriptedBackend

from .helpers import EchoCall

REPO = Path(__file__).resolve().parents[2]


def shard_cache(path, answers: dict[str, str]) -> Path:
    with CallCache(path) as cache:
        for key, text in answers.items():
            cache.put(key, ChatResponse(text, Usage(3, 1), "stop"), call_name="scene", model="m")
    return path


def test_merged_shards_hold_every_answer_and_keep_the_targets_on_a_clash(tmp_path):
    first = shard_cache(tmp_path / "shard-0.sqlite", {"a": "A", "b": "B"})
    second = shard_cache(tmp_path / "shard-1.sqlite", {"b": "B", "c": "C", "d": "D"})
    target = shard_cache(tmp_path / "merged.sqlite", {"d": "D from an earlier run"})
    reports = merge_caches(target, [first, second])
    assert [(r.answers, r.added, r.identical, r.differing) for r in reports] == [(2, 2, 0, 0), (3, 1, 1, 1)]
    with CallCache(target) as merged:
        assert len(merged) == 4
        assert merged.get("c") == ChatResponse("C", Usage(3, 1), "stop", cached=True)
        assert merged.get("d").text == "D from an earlier run"
    with CallCache(first) as source:  # sources are read, never written
        assert len(source) == 2


def test_a_run_on_the_merged_cache_makes_no_model_call(tmp_path):
    for shard, items in enumerate((["a", "b"], ["c"])):
        with CallCache(tmp_path / f"shard-{shard}.sqlite") as cache:
            run_calls_sync(EchoCall(), items, ScriptedBackend(respond=lambda r: "seen"), cache=cache, concurrency=2)
    merge_caches(tmp_path / "all.sqlite", [tmp_path / "shard-0.sqlite", tmp_path / "shard-1.sqlite"])
    backend = ScriptedBackend(respond=lambda r: "asked again")
    with CallCache(tmp_path / "all.sqlite") as cache:
        results = run_calls_sync(EchoCall(), ["a", "b", "c"], backend, cache=cache, concurrency=3)
    assert [r.output for r in results] == ["seen"] * 3 and backend.calls == 0


def test_the_command_reports_counts_and_rejects_bad_sources_with_exit_2(tmp_path):
    source = shard_cache(tmp_path / "s.sqlite", {"a": "A"})
    command = [sys.executable, "-m", "modelcalls.cache_merge", "--into", str(tmp_path / "t.sqlite")]
    done = subprocess.run([*command, str(source)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "1 answers, 1 added, 0 already there, 0 differing" in done.stdout

    (tmp_path / "junk.sqlite").write_bytes(b"not a database" * 100)
    for bad, message in ((tmp_path / "missing.sqlite", "no such cache file"),
                         (tmp_path / "junk.sqlite", "not a usable call cache"),
                         (tmp_path / "t.sqlite", "is the target itself")):
        done = subprocess.run([*command, str(bad)], capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
