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
import pytest
import yaml

import rms_dataset as rms
from generation.release.merge import merge
from generation.release.validate import validate_release
from generation.run import run
from tests.generation_pipeline.conftest import config_for, shared_photos, write_folder

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


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The photo folder and the release of one uninterrupted run (shared by the kill tests)."""
    root = tmp_path_factory.mktemp("clean")
    folder = write_folder(root / "photos", [(p.name, p.read_bytes(), d) for p, d in zip(shared_photos(len(DESCRIPTIONS)), DESCRIPTIONS)])
    report = run(config_for(folder, **{k: v for k, v in _config_dict(folder).items() if k != "input"}), root / "run",
                 show_progress=False)
    assert report["pairs"] >= 4
    return folder, report, release_content(root / "run" / "release")


def test_run_killed_with_sigkill_resumes_to_the_same_release(clean, tmp_path):
    folder, clean_report, clean_release = clean

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
    assert 0 < resumed_calls < clean_report["usage"]["model_calls"]  # only the unfinished work was redone
    assert release_content(tmp_path / "killed" / "release") == clean_release
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
    for key, rows in base.items():  # every base row, photo bytes and name included, is written as it was
        if key not in ("rejects", "taxonomy") and key[0] in rms.SOURCE_CONFIGS:
            kept = {row["id"]: row for row in new[key]}
            assert rows and all(kept[row["id"]] == row for row in rows)


def test_a_base_release_is_read_with_its_photos_by_path_and_its_scratch_folder_goes(photo_folder, make_config,
                                                                                      tmp_path):
    from generation.release.finalize import load_base_release

    run(make_config(photo_folder(DESCRIPTIONS[:3], name="v1")), tmp_path / "v1", show_progress=False)
    base = load_base_release(str(tmp_path / "v1" / "release"))
    rows = [row for config in base.rows.values() for split in config.values() for row in split]
    assert rows and all(row["image"]["bytes"] is None and Path(row["image"]["path"]).is_file() for row in rows)
    assert len(base.hashes) == len({row["image_id"] for row in base.pairs})
    scratch = base.photos_dir
    del base, rows
    assert not scratch.exists()


KILL_IN_COMMIT = """
import os, signal, sys
from generation.engine import store

target, fraction, original = sys.argv[1], float(sys.argv[2]), store.StepStore._write


def write_then_die(self, payload):
    if self.path.name.startswith(target + "-") and payload.count(b"\\n") >= 2:  # the first batch of several lines
        with open(self.path, "ab") as handle:
            handle.write(payload[: int(len(payload) * fraction)])
        os.kill(os.getpid(), signal.SIGKILL)
    original(self, payload)


store.StepStore._write = write_then_die
from generation.__main__ import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("step, fraction", [("verify", 0.5), ("respond_safe", 0.0)],
                         ids=["verify-torn-mid-batch", "respond-before-the-write"])
def test_a_run_killed_during_a_batch_commit_resumes_to_the_same_release(step, fraction, clean, tmp_path):
    folder, clean_report, clean_release = clean
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(_config_dict(folder)))
    arguments = ["run", str(config_path), "--out", str(tmp_path / "killed"), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", KILL_IN_COMMIT, step, str(fraction), *arguments], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (log,) = (tmp_path / "killed" / "steps").glob(f"{step}-*.jsonl")
    if 0 < fraction < 1:
        assert not log.read_bytes().endswith(b"\n")  # the kill left a torn line

    resumed = subprocess.run([sys.executable, "-m", "generation", *arguments], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert 0 < int(re.search(r"(\d+) model calls", resumed.stdout).group(1)) < clean_report["usage"]["model_calls"]
    assert release_content(tmp_path / "killed" / "release") == clean_release
    keys = [json.loads(line)["key"] for line in log.read_text().splitlines()]
    assert len(keys) == len(set(keys))


def test_a_run_killed_during_the_ingest_commit_resumes_to_the_same_release(clean, tmp_path):
    """Ingest group-commits too: the photos' JPEGs are written (not fsynced) before their checkpoint lines,
    which go to disk in one write + fsync per batch. A kill in the middle of that write leaves the JPEGs
    and a torn checkpoint; the resumed run drops the torn line, re-ingests what it lost and releases the
    same bytes."""
    folder, clean_report, clean_release = clean
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(_config_dict(folder)))
    arguments = ["run", str(config_path), "--out", str(tmp_path / "killed"), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", KILL_IN_COMMIT, "ingest", "0.5", *arguments], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (log,) = (tmp_path / "killed" / "steps").glob("ingest-*.jsonl")
    assert not log.read_bytes().endswith(b"\n")  # the kill tore the batch
    assert any((tmp_path / "killed" / "images").glob("*.jpg"))  # photos written before their lines
    assert not list((tmp_path / "killed" / "steps").glob("screen-*.jsonl"))  # killed before any model call

    resumed = subprocess.run([sys.executable, "-m", "generation", *arguments], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert release_content(tmp_path / "killed" / "release") == clean_release
    keys = [json.loads(line)["key"] for line in log.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == len(DESCRIPTIONS)
    assert not [p.name for p in (tmp_path / "killed" / "images").iterdir() if p.name.startswith(".")]  # no temp files


def test_a_photo_lost_after_its_checkpoint_is_ingested_again(clean, tmp_path):
    """A photo's JPEG is not fsynced on its own, so a power failure can lose a file whose checkpoint line
    survived. Resuming checks every checkpointed photo against its id (the hash of its bytes): a missing or
    damaged file is ingested again, and nothing else is redone."""
    folder, clean_report, clean_release = clean
    config = config_for(folder, **{k: v for k, v in _config_dict(folder).items() if k != "input"})
    out = tmp_path / "run"
    run(config, out, show_progress=False)
    missing, damaged = sorted((out / "images").glob("*.jpg"))[:2]
    intact = damaged.read_bytes()
    missing_bytes = missing.read_bytes()
    missing.unlink()
    damaged.write_bytes(intact[: len(intact) // 3])

    report = run(config, out, show_progress=False)
    assert report["usage"]["model_calls"] == 0  # the model steps' checkpoints were all reused
    assert missing.read_bytes() == missing_bytes and damaged.read_bytes() == intact
    assert release_content(out / "release") == clean_release


def test_merge_refuses_a_shard_photo_that_does_not_match_its_id(photo_folder, make_config, tmp_path, capsys):
    """What a power failure can do to an unsynced photo must never reach a release: merge checks every
    released photo's bytes against its id and names the file to re-ingest."""
    from generation.__main__ import main

    config = make_config(photo_folder(DESCRIPTIONS))
    shard_dirs = [tmp_path / f"shard-{index}" for index in range(2)]
    for index, out in enumerate(shard_dirs):
        run(config, out, shard=(index, 2), show_progress=False)
    released = [json.loads(line)["image_id"] for line in (shard_dirs[0] / "shard" / "pairs.jsonl").read_text().splitlines()]
    damaged = shard_dirs[0] / "images" / f"{released[0]}.jpg"
    damaged.write_bytes(damaged.read_bytes()[:-100])

    assert main(["merge", *map(str, shard_dirs), "--out", str(tmp_path / "merged")]) == 2
    assert f"{damaged}: its bytes do not match its id" in capsys.readouterr().err
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("field, odd, named", [
    ("models", {"backend": "transformers", "model": "org/vlm", "loaded": {"commit": "b" * 40}}, "generator answers came from"),
    ("normalise_version", 1, "normalised by ingest version 1"),
])
def test_merge_refuses_shards_from_other_weights_or_other_normalisation(photo_folder, make_config, tmp_path, capsys,
                                                                        field, odd, named):
    """One release, one producer: a shard whose Hub model moved on between shard jobs (same name, other
    commit), or whose photos older code normalised, is refused with the shard, what differs and what to do;
    nothing is written."""
    from generation.__main__ import main

    config = make_config(photo_folder(DESCRIPTIONS))
    shard_dirs = [tmp_path / f"shard-{index}" for index in range(2)]
    for index, out in enumerate(shard_dirs):
        run(config, out, shard=(index, 2), show_progress=False)
    summary_path = shard_dirs[1] / "shard" / "summary.json"
    summary = json.loads(summary_path.read_text())
    assert summary["normalise_version"] >= 2 and set(summary["models"]) == {"generator", "verifier"}
    if field == "models":
        summary["models"]["generator"] = odd
    else:
        summary["normalise_version"] = odd
    summary_path.write_text(json.dumps(summary))

    assert main(["merge", *map(str, shard_dirs), "--out", str(tmp_path / "merged")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {shard_dirs[1]}: ") and named in error and "rerun" in error
    assert not (tmp_path / "merged").exists()
