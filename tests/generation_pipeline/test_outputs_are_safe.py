"""Nothing a user owns is lost or silently stale: one writer per directory, no directory replaced that a
command did not write, no stale release or rejects file left behind (generation/engine/outputs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from generation.__main__ import main
from generation.engine.outputs import lock_path
from generation.release.merge import merge
from generation.release.validate import validate_release
from generation.run import run

REPO = Path(__file__).resolve().parents[2]


def write_run_config(folder: Path, directory: Path, delay_s: float = 0.0) -> Path:
    """`directory`/run.yaml: the fake model (each answer after `delay_s`) on the photos of `folder`."""
    role = {"backend": "scripted", "respond": "tests.generation_pipeline.fake_model:respond", "supports_images": False,
            "delay_s": delay_s}
    path = directory / "run.yaml"
    path.write_text(yaml.safe_dump({"input": {"kind": "folder", "path": str(folder)}, "exemplars": None,
                                    "generator": {**role, "model": "g"}, "verifier": {**role, "model": "v"}}))
    return path


def test_a_second_writer_of_one_out_is_refused_with_the_first_ones_pid_and_command(photo_folder, tmp_path, capsys):
    config = write_run_config(photo_folder(["a cliff edge", "a stove"]), tmp_path, delay_s=2.0)  # killed long before it ends
    out = tmp_path / "run"
    command = [sys.executable, "-m", "generation", "run", str(config), "--out", str(out), "--no-progress"]
    first = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (lock_path(out).exists() and lock_path(out).read_text()) and time.time() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, "the first run ended before the second started"
        assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and f"--out {out}: another process is writing it (PID {first.pid}:" in error
        assert f"generation run {config} --out {out}" in error
    finally:
        first.kill()
        first.wait()


def test_the_lock_of_a_killed_writer_is_taken_over_saying_whose_it_was(photo_folder, make_config, tmp_path, caplog):
    out = tmp_path / "run"
    lock_path(out).write_text(json.dumps({"pid": 2 ** 22 + 1, "command": "python -m generation run old.yaml",
                                          "since": "2026-01-01 00:00:00 UTC"}))
    report = run(make_config(photo_folder(["a cliff edge"])), out, show_progress=False)
    assert report["pairs"] == 1
    assert "took over the lock of a writer that is no longer running (PID 4194305" in caplog.text
    assert not lock_path(out).exists()  # released when the run ended


def test_merge_refuses_an_out_directory_holding_files_it_did_not_write(photo_folder, make_config, tmp_path, capsys):
    shard = tmp_path / "shard"
    run(make_config(photo_folder(["a cliff edge"])), shard, shard=(0, 1), show_progress=False)
    mine = tmp_path / "mine"
    (mine / "drafts").mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes")
    # a folder of the user's, and a run directory (its checkpoints and call cache)
    for out, named in ((mine, "(drafts/, notes.txt)"), (shard, "calls.sqlite")):
        before = sorted(path.relative_to(out) for path in out.rglob("*"))
        assert main(["merge", str(shard), "--out", str(out)]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"error: --out {out}: holds files that are not part of a release (") and error.count("\n") == 1
        assert named in error
        assert sorted(path.relative_to(out) for path in out.rglob("*")) == before
    release = tmp_path / "release"
    assert main(["merge", str(shard), "--out", str(release)]) == 0
    assert main(["merge", str(shard), "--out", str(release)]) == 0  # a release it wrote is replaced
    assert validate_release(str(release)) == []


def test_a_run_that_writes_no_release_removes_the_previous_one_and_a_new_release_removes_old_rejects(
        photo_folder, make_config, tmp_path):
    out = tmp_path / "run"
    kept = make_config(photo_folder(["a cliff edge"], name="kept"))
    none_kept = make_config(photo_folder(["UNSAFE_PHOTO"], name="none"))
    assert run(kept, out, show_progress=False)["release"] == str(out / "release")

    report = run(none_kept, out, show_progress=False)
    assert report["release"] is None and not (out / "release").exists()  # nothing left that could be published
    assert report["removed"] == [f"removed {out / 'release'}, left by an earlier run (this run wrote no release; "
                                 "it no longer matched the run's outcome)"]
    assert (out / "release-rejects.jsonl").exists()

    report = run(kept, out, show_progress=False)
    assert report["release"] == str(out / "release") and not (out / "release-rejects.jsonl").exists()
    assert [line.split(",")[0] for line in report["removed"]] == [f"removed {out / 'release-rejects.jsonl'}"]
    assert not list(out.glob(".release.retired-*"))


def test_build_sample_refuses_an_out_directory_holding_files_it_did_not_write(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    assert main(["build-sample", "--out", str(mine)]) == 2
    assert capsys.readouterr().err == (f"error: --out {mine}: holds files that are not part of a release (notes.txt); "
                                       "writing the release there would delete them: give a new or empty directory, "
                                       "or move them away\n")
    assert (mine / "notes.txt").read_text() == "my notes"
