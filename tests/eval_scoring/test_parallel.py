"""Data-parallel scoring: `accelerate launch --num_processes 2 -m eval.score` on CPU (gloo) writes the same
cells, samples and prediction cache as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval.judges.base import Prediction
from eval.parallel import GatheredJudge, item_key
from eval.judges.sanity import make_sanity_judge

REPO = Path(__file__).resolve().parents[2]
ACCELERATE = Path(sys.executable).with_name("accelerate")
ARGS = ["--benchmarks", "mssbench,vlsu", "--limit", "24", "--kind", "oracle:0.9:0", "--n-bootstrap", "50"]


def score(out: Path, launcher: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, "-m", "eval.score", *ARGS, "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and "ranks" not in path.parts}


@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate is not installed")
def test_two_cpu_processes_write_the_cells_of_one_process(tmp_path):
    one = score(tmp_path / "one", [sys.executable])
    two = score(tmp_path / "two", [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2",
                                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"])
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    single, launched = files(tmp_path / "one"), files(tmp_path / "two")
    assert set(single) == set(launched)
    assert len([name for name in single if name.endswith(".samples.jsonl")]) == 2
    for name in single:
        if name.endswith(".json"):  # the result: identical except for when it was written
            a, b = json.loads(single[name]), json.loads(launched[name])
            a.pop("created_at"), b.pop("created_at")
            assert a == b, name
        else:  # samples.jsonl and the prediction cache: byte for byte
            assert single[name] == launched[name], name
    assert two.stdout.count("mssbench__query__limit=24:") == 1  # only rank 0 writes and reports
    # each rank scored its own half and kept it in its own cache
    rank_caches = sorted(path.parent.parent.name for path in (tmp_path / "two").rglob("ranks/*/*/mssbench__query.jsonl"))
    assert rank_caches == ["0-of-2", "1-of-2"]


def test_rank_zero_answers_from_the_gathered_predictions_with_the_launched_judges_identity(judge_examples):
    judge = make_sanity_judge("oracle:0.9:0")
    gathered = {item_key(example): Prediction(label="unsafe", p_unsafe=1.0, raw_text="gathered")
                for example in judge_examples}
    merged = GatheredJudge(judge, gathered)
    assert merged.judge_id == judge.judge_id and merged.describe() == judge.describe()
    assert merged.rendered_prompt(judge_examples[0]) == judge.rendered_prompt(judge_examples[0])
    assert merged.reads_images == judge.reads_images
    assert [p.raw_text for p in merged.score(judge_examples[:2])] == ["gathered", "gathered"]
