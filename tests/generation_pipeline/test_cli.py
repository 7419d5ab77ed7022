"""The `run` / `merge` / `gallery` commands: clear errors for bad input, honest help."""

from __future__ import annotations

import yaml

from generation.__main__ import build_parser, main


def test_bad_config_is_reported_with_the_key_and_exit_code_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"input": {"kind": "folder", "path": "x"}, "generator": {"backend": "scripted", "model": "g", "replies": []},
                                    "verifier": {"backend": "scripted", "model": "v", "replies": []}, "max_rewrite": 3}))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "max_rewrite: unknown key; allowed keys: " in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert "run config not found" in capsys.readouterr().err


def test_merge_of_a_directory_that_is_not_a_shard_says_what_to_do(tmp_path, capsys):
    assert main(["merge", str(tmp_path), "--out", str(tmp_path / "release")]) == 2
    assert "no shard/summary.json" in capsys.readouterr().err


def test_cli_run_then_gallery(photo_folder, make_config, tmp_path, capsys):
    folder = photo_folder(["a cliff edge", "a stove"])
    config = make_config(folder).to_dict()
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "screen" in out and "100%" in out and "release:" in out and "pairs: 2" in out
    assert main(["gallery", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "gallery.html").exists()


def test_shard_argument_is_validated():
    parser = build_parser()
    for bad in ("3/3", "x", "1/0"):
        try:
            parser.parse_args(["run", "c.yaml", "--out", "o", "--shard", bad])
        except SystemExit as exit_:
            assert exit_.code == 2
        else:
            raise AssertionError(f"--shard {bad} was accepted")
