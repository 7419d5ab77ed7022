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


def test_a_generator_whose_replicas_serve_different_weights_is_refused_before_any_call(photo_folder, make_config,
                                                                                       tmp_path, capsys):
    """Two replicas listing other weights under one model name (GET /v1/models, as vLLM answers it) would
    mix two models in one release under one name: exit 2 as the run starts, naming the role and each
    replica's weights, before a single model call."""
    from tests.modelcalls.conftest import ScriptedServer

    replicas = [ScriptedServer(), ScriptedServer()]
    try:
        for replica, root in zip(replicas, ("/ckpt/step-500", "/ckpt/step-900")):
            replica.models = [{"id": "judge", "root": root}]
        config = make_config(photo_folder(["a cliff edge"])).to_dict()
        config["generator"] = {"backend": "openai", "model": "judge", "base_url": [r.base_url for r in replicas]}
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        assert main(["run", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: generator: backend 'openai' 'judge': the replicas serve different weights")
        assert "/ckpt/step-500" in error and "/ckpt/step-900" in error
        assert [r.received for r in replicas] == [[], []]  # no completion was asked for
    finally:
        for replica in replicas:
            replica.close()


def test_shard_argument_is_validated():
    parser = build_parser()
    for bad in ("3/3", "x", "1/0"):
        try:
            parser.parse_args(["run", "c.yaml", "--out", "o", "--shard", bad])
        except SystemExit as exit_:
            assert exit_.code == 2
        else:
            raise AssertionError(f"--shard {bad} was accepted")
