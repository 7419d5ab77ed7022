"""A damaged state file (call cache, checkpoint, shard outcome) is recovered, saying so, or stops the
command with one line naming the file and what to do (exit 1); a --base-release that is not a release is
a usage error (exit 2). Never a traceback."""

from __future__ import annotations

import json
import os
import shutil

from generation.__main__ import main
from generation.run import run
from tests.generation_pipeline.test_outputs_are_safe import write_run_config


def _shard(photo_folder, make_config, tmp_path):
    out = tmp_path / "shard"
    run(make_config(photo_folder(["a cliff edge", "a stove", "a pool at night"])), out, shard=(0, 1), show_progress=False)
    return out


def test_merge_refuses_a_shard_whose_pairs_file_lost_lines(photo_folder, make_config, tmp_path, capsys):
    shard = _shard(photo_folder, make_config, tmp_path)
    pairs = shard / "shard" / "pairs.jsonl"
    lines = pairs.read_text().splitlines(keepends=True)
    pairs.write_text("".join(lines[:-1]))
    assert main(["merge", str(shard), "--out", str(tmp_path / "release")]) == 1
    assert capsys.readouterr().err == (
        f"error: {pairs}: {len(lines) - 1} rows where its shard wrote {len(lines)} (summary.json): the file was truncated "
        "or damaged; rerun that shard's `python -m generation run` (same --shard and --out: its finished steps are "
        "resumed), then merge again\n")
    assert not (tmp_path / "release").exists()


def test_merge_names_a_garbled_shard_summary(photo_folder, make_config, tmp_path, capsys):
    shard = _shard(photo_folder, make_config, tmp_path)
    summary = shard / "shard" / "summary.json"
    summary.write_text('{"shard": [0, 1], "fun')
    assert main(["merge", str(shard), "--out", str(tmp_path / "release")]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {summary}: damaged, not valid JSON (") and error.count("\n") == 1


def test_a_damaged_call_cache_stops_the_run_with_one_line_naming_it(photo_folder, tmp_path, capsys):
    config, out = write_run_config(photo_folder(["a cliff edge", "a stove"]), tmp_path), tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 0
    cache = out / "calls.sqlite"
    for leftover in (out / "calls.sqlite-wal", out / "calls.sqlite-shm"):
        leftover.unlink(missing_ok=True)
    data = bytearray(cache.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)  # every page after the first garbled, the header intact
    cache.write_bytes(bytes(data))
    shutil.rmtree(out / "steps")  # the answers must come from the cache now
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {cache}: not a usable call cache, it is damaged (") and error.count("\n") == 1
    assert "move it aside and rerun" in error


def test_a_checkpoint_line_that_holds_no_outcome_is_dropped_and_its_item_redone(photo_folder, make_config, tmp_path,
                                                                                caplog):
    config, out = make_config(photo_folder(["a cliff edge", "a stove"])), tmp_path / "run"
    first = run(config, out, show_progress=False)
    [screen] = (out / "steps").glob("screen-*.jsonl")
    lines = screen.read_text().splitlines()
    key = json.loads(lines[0])["key"]
    screen.write_text("\n".join([json.dumps({"key": key, "value": 42}), *lines[1:]]) + "\n")
    for stamp in (out / "steps").glob("run-*.json"):
        stamp.unlink()  # the run is not skipped as done (run_stamp): its checkpoints are read
    again = run(config, out, show_progress=False)
    assert f"{screen}: 1 damaged checkpoint line(s) dropped (line 1); their items are redone" in caplog.text
    assert again["pairs"] == first["pairs"] and again["usage"]["cached_calls"] == 1  # the screen answer, from the cache
    assert sorted(json.loads(line)["key"] for line in screen.read_text().splitlines()) == \
        sorted(json.loads(line)["key"] for line in lines)


def test_a_base_release_that_is_not_a_release_is_one_line(photo_folder, tmp_path, capsys):
    config = write_run_config(photo_folder(["a cliff edge"]), tmp_path)
    folder = tmp_path / "not-a-release"
    (folder / "notes").mkdir(parents=True)
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--base-release", str(folder), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: --base-release {folder}: not a release that validates (") and error.count("\n") == 1
