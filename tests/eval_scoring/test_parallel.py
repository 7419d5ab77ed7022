"""Data-parallel scoring: `accelerate launch --num_processes 2 -m eval.score` on CPU (gloo) writes the same
cells, samples and prediction cache as one process, for a rule judge and for the tiny LLaVA judge (whose
numbers depend on the batch an item shares: ranks score the same chunks one process would)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from eval.judges.base import Prediction
from eval.parallel import GatheredJudge, Ranks, item_key, rank_share
from eval.judges.sanity import make_sanity_judge

REPO = Path(__file__).resolve().parents[2]
ACCELERATE = Path(sys.executable).with_name("accelerate")
ORACLE = ["--benchmarks", "mssbench,vlsu", "--limit", "40", "--kind", "oracle:0.9:0", "--n-bootstrap", "50"]
TINY_LLAVA = ["--benchmarks", "mssbench", "--limit", "40", "--text-only", "--base-model", "tiny-llava",
              "--mode", "fast", "--n-bootstrap", "0"]  # 40 items: chunks of 32 and 8, one on each rank
LAUNCH = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]


def score(out: Path, launcher: list[str], args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*launcher, "-m", "eval.score", *args, "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)


def files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and "ranks" not in path.parts and not path.name.endswith(("-wal", "-shm"))}


def cached_answers(path: Path) -> list[tuple]:
    """The answers of a call cache file, without the time each was written."""
    with closing(sqlite3.connect(path)) as db:
        return sorted(db.execute("SELECT key, call_name, model, text FROM calls").fetchall())


def assert_same_cells(one: Path, two: Path) -> None:
    single, launched = files(one), files(two)
    assert set(single) == set(launched)
    for name in single:
        if name.endswith(".json"):  # the result: identical except for when it was written
            a, b = json.loads(single[name]), json.loads(launched[name])
            a.pop("created_at"), b.pop("created_at")
            assert a == b, name
        elif name.endswith(".sqlite"):  # the call cache: the same answers under the same keys
            assert cached_answers(one / name) == cached_answers(two / name), name
        else:  # samples.jsonl: byte for byte
            assert single[name] == launched[name], name


@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate is not installed")
def test_two_cpu_processes_write_the_cells_of_one_process(tmp_path):
    one = score(tmp_path / "one", [sys.executable], ORACLE)
    two = score(tmp_path / "two", LAUNCH, ORACLE)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert_same_cells(tmp_path / "one", tmp_path / "two")
    assert len([name for name in files(tmp_path / "one") if name.endswith(".samples.jsonl")]) == 2
    assert two.stdout.count("mssbench__query__limit=40:") == 1  # only rank 0 writes and reports
    # each rank scored its own chunks (mssbench: 32 + 8 items) and kept them in its own cache
    rank_caches = {path.parent.name: cached_answers(path) for path in (tmp_path / "two").rglob("ranks/*/calls.sqlite")}
    assert sorted(rank_caches) == ["0-of-2", "1-of-2"] and all(rank_caches.values())


@pytest.mark.slow
@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate is not installed")
def test_two_cpu_processes_score_the_tiny_llava_judge_to_the_last_digit(tmp_path):
    one = score(tmp_path / "one", [sys.executable], TINY_LLAVA)
    two = score(tmp_path / "two", LAUNCH, TINY_LLAVA)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert_same_cells(tmp_path / "one", tmp_path / "two")  # p_unsafe and label mass included
    [samples] = (tmp_path / "one").rglob("*.samples.jsonl")
    assert all(json.loads(line)["p_unsafe"] is not None for line in samples.read_text().splitlines())


def test_each_rank_takes_whole_chunks_of_each_source_in_turn(judge_examples):
    examples = [replace(judge_examples[0], source=source, source_id=f"{source}{index}")
                for source, count in (("a", 70), ("b", 40)) for index in range(count)]
    first, second = (rank_share(examples, Ranks(index, 2)) for index in (0, 1))
    assert [e.source_id for e in second] == [f"a{i}" for i in range(32, 64)] + [f"b{i}" for i in range(32, 40)]
    assert len(first) == 32 + 6 + 32 and not {e.source_id for e in first} & {e.source_id for e in second}


def test_rank_zero_answers_from_the_gathered_predictions_with_the_launched_judges_identity(judge_examples):
    judge = make_sanity_judge("oracle:0.9:0")
    gathered = {item_key(example): Prediction(label="unsafe", p_unsafe=1.0, raw_text="gathered")
                for example in judge_examples}
    merged = GatheredJudge(judge, gathered)
    assert merged.judge_id == judge.judge_id and merged.describe() == judge.describe()
    assert merged.rendered_prompt(judge_examples[0]) == judge.rendered_prompt(judge_examples[0])
    assert merged.reads_images == judge.reads_images
    assert [p.raw_text for p in merged.score(judge_examples[:2])] == ["gathered", "gathered"]
