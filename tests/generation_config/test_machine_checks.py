"""What depends on the machine (paths, environment, the cache file) is checked before any model is built:
one line naming the key or option, exit 2, no traceback, nothing written."""

from __future__ import annotations

import sqlite3

from generation.engine.config import RunConfig, check_run

from .conftest import valid_config
from .test_bad_values import assert_refused, set_key


def test_a_missing_input_folder(run_cli, tmp_path):
    assert_refused(run_cli(set_key("input.path", str(tmp_path / "nowhere"))), f"input.path: {tmp_path / 'nowhere'} is not a folder")


def test_a_folder_without_its_manifest(run_cli, photo_dir):
    (photo_dir / "MANIFEST.csv").unlink()
    assert_refused(run_cli(), f"input.manifest: {photo_dir / 'MANIFEST.csv'} not found; every image needs source and license")


def test_a_missing_manifest_file(run_cli, tmp_path):
    change = set_key("input", {"kind": "manifest", "path": str(tmp_path / "rows.csv")})
    assert_refused(run_cli(change), f"input.path: manifest {tmp_path / 'rows.csv'} not found")


def test_an_unset_api_key_env(run_cli, monkeypatch):
    monkeypatch.delenv("RMS_TEST_UNSET_KEY", raising=False)

    def openai(data):
        data["verifier"] = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "RMS_TEST_UNSET_KEY"}

    assert_refused(run_cli(openai), "verifier.api_key_env: $RMS_TEST_UNSET_KEY is not set; export it")


def test_a_cache_file_that_is_not_sqlite(run_cli, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    assert_refused(run_cli(set_key("cache", str(notes))), f"cache: {notes} is not an SQLite database")
    assert notes.read_text() == "not a database\n"  # untouched


def test_a_real_sqlite_cache_and_a_new_one_are_accepted(photo_dir, tmp_path):
    existing = tmp_path / "calls.sqlite"
    sqlite3.connect(existing).execute("create table t (x)").connection.close()
    for cache in (existing, tmp_path / "new.sqlite"):
        config = RunConfig.from_dict({**valid_config(photo_dir), "cache": str(cache)})
        check_run(config, tmp_path / "out")  # raises on a problem


def test_out_pointing_at_a_file(run_cli, tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    assert_refused(run_cli(out=target), f"--out {target}: is a file; give a directory")
    assert target.read_text() == "keep me"


def test_a_missing_base_release(run_cli, tmp_path):
    missing = tmp_path / "releases" / "v1"
    assert_refused(run_cli(None, "--base-release", str(missing)), f"--base-release {missing}: no such directory")


def test_missing_exemplars_are_an_error_not_a_silent_fallback(run_cli, tmp_path):
    assert_refused(run_cli(set_key("exemplars", str(tmp_path / "pairs.jsonl"))), "exemplars: ", "pairs.jsonl not found")


def test_merge_checks_its_options_too(tmp_path, capsys):
    from generation.__main__ import main

    assert main(["merge", str(tmp_path), "--out", str(tmp_path / "r"), "--base-release", str(tmp_path / "none" / "v1")]) == 2
    err = capsys.readouterr().err
    assert f"--base-release {tmp_path / 'none' / 'v1'}: no such directory" in err and "Traceback" not in err

