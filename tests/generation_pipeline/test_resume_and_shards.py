"""Resume after SIGKILL, and sharded runs + merge, both produce exactly the release of one clean run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

import rms_dataset as rms
from generation.merge import merge
from generation.run import run
from generation.validate import validate_release

REPO = Path(__file__).resolve().parents[2]
DESCRIPTIONS = ["a cliff edge at sunset", "a kitchen stove LEAKY", "a pool at night BLAND", "UNSAFE_PHOTO",
                "a cliff HOPELESS", "a stove BAD_TWIN", "a quiet pool", "a stove in a small flat"]


def release_content(root: Path) -> dict:
    content = {}
    for config in rms.CONFIG_NAMES:
        for split, paths in rms.find_shards(str(root), config).items():
            content[(config, split)] = [row for path in paths for row in pq.read_table(path).to_pylist()]
    content["rejects"] = (root / "rejects.jsonl").read_text()
    content["taxonomy"] = json.loads((root / "taxonomy.json").read_text())
    return content


def _config_dict(folder: Path, delay_s: float = 0.0) -> dict:
    role = {"backend": "scripted", "respond": "tests.generation_pipeline.fake_model:respond", "supports_images": False,
            "delay_s": delay_s}
    return {"input": {"kind": "folder", "path": str(folder)}, "exemplars": None, "concurrency": 2, "risk_chunk": 3,
            "generator": {**role, "model": "fake-generator"}, "verifier": {**role, "model": "fake-verifier"}}


def test_run_killed_with_sigkill_resumes_to_the_same_release(photo_folder, make_config, tmp_path):
    folder = photo_folder(DESCRIPTIONS)
    clean = run(make_config(folder, **{k: v for k, v in _config_dict(folder).items() if k != "input"}),
                tmp_path / "clean", show_progress=False)
    assert clean["pairs"] >= 4

    config_path = tmp_path / "slow.yaml"
    config_path.write_text(yaml.safe_dump(_config_dict(folder, delay_s=0.05)))
    command = [sys.executable, "-m", "generation", "run", str(config_path), "--out", str(tmp_path / "killed"), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    steps = tmp_path / "killed" / "steps"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if sum(log.read_text().count("\n") for log in steps.glob("verify-*.jsonl")) >= 6:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed; slow it down"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "release").exists()

    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    resumed_calls = int(re.search(r"(\d+) model calls", finished.stdout).group(1))
    assert 0 < resumed_calls < clean["usage"]["model_calls"]  # only the unfinished work was redone
    assert release_content(tmp_path / "killed" / "release") == release_content(tmp_path / "clean" / "release")
    for step_file in (tmp_path / "killed" / "steps").glob("*.jsonl"):
        keys = [json.loads(line)["key"] for line in step_file.read_text().splitlines()]
        assert len(keys) == len(set(keys)), f"{step_file.name} has duplicate entries"


def test_sharded_runs_merged_equal_the_unsharded_run(photo_folder, make_config, tmp_path):
    folder = photo_folder(DESCRIPTIONS)
    config = make_config(folder)
    whole = run(config, tmp_path / "whole", show_progress=False)
    shard_dirs = []
    for index in range(3):
        out = tmp_path / f"shard-{index}"
        report = run(config, out, shard=(index, 3), show_progress=False)
        assert "release" not in report  # a shard leaves its outcome for merge
        shard_dirs.append(str(out))
    sizes = [len((Path(d) / "shard" / "images.jsonl").read_text().splitlines()) for d in shard_dirs]
    assert sum(sizes) == whole["funnel"]["ingest"][1] and max(sizes) < sum(sizes)  # really split
    merged = merge(shard_dirs, str(tmp_path / "merged"))
    assert merged["problems"] == [] and validate_release(str(tmp_path / "merged")) == []
    assert release_content(tmp_path / "merged") == release_content(tmp_path / "whole" / "release")
    assert merged["funnel"] == whole["funnel"]


def test_new_version_keeps_base_release_rows_and_skips_known_images(photo_folder, make_config, tmp_path):
    first = photo_folder(DESCRIPTIONS[:3], name="v1")
    run(make_config(first), tmp_path / "v1", show_progress=False)
    base = release_content(tmp_path / "v1" / "release")
    second = photo_folder(DESCRIPTIONS[:3] + ["a pool with a diving board"], name="v2")  # the same 3 photos + 1 new
    report = run(make_config(second), tmp_path / "v2", base_release=str(tmp_path / "v1" / "release"), show_progress=False)
    new = release_content(tmp_path / "v2" / "release")
    old_pairs = {row["id"] for key, rows in base.items() if key != "rejects" and key != "taxonomy" and key[0] == "pairs" for row in rows}
    new_pairs = {row["id"] for key, rows in new.items() if key not in ("rejects", "taxonomy") and key[0] == "pairs" for row in rows}
    assert old_pairs < new_pairs and len(new_pairs - old_pairs) == report["new_pairs"] == 1
    rejects = [json.loads(l) for l in new["rejects"].splitlines()]
    assert sum("base release" in r["reason"] for r in rejects) == 3
