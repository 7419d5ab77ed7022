"""The grid end to end on CPU: a real 1-step QLoRA recipe run of the tiny LLaVA on the sample release,
scored on held-out benchmarks; reruns skip what is finished."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest
import yaml

from eval import grid as grid_module
from eval.grid import main, run_grid
from eval.grid_config import GridError, load_grid
from eval.predictions import CACHE_FILE
from eval.results import RESULT_SCHEMA_VERSION

from .conftest import write_benchmark


def cached_answers(cache_dir):
    """Every answer in the folder's call cache with the time it was written (a rescore rewrites it)."""
    with closing(sqlite3.connect(cache_dir / CACHE_FILE)) as db:
        return sorted(db.execute("SELECT key, text, created FROM calls").fetchall())


def _write_grid(tmp_path, repo_root, benchmark_file, **changes):
    config = {
        "name": "test",
        "datasets": [{"name": "rms-sample", "sources": [{"name": "rms", "split": "train"}], "train_fractions": [1.0]}],
        "models": [{"name": "tiny-llava", "recipe": str(repo_root / "recipes/tiny_llava/qlora.yaml"),
                    "overrides": {"training.max_steps": 1, "training.save_steps": 1}}],
        "benchmarks": [
            {"name": "eval_fixture", "options": {"annotations": str(benchmark_file)}, "limit": 4},
            {"name": "rms", "split": "test", "limit": 4},  # the judge's own training source: never scored
        ],
        "judge": {"mode": "fast", "batch_size": 4},
        "n_bootstrap": 50,
        "sanity_judges": [],  # reference rows have their own test (tests/eval_sanity/test_grid_references.py)
    }
    config.update(changes)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_grid_trains_scores_held_out_benchmarks_and_resumes(tmp_path, repo_root, photo_paths, monkeypatch):
    benchmark = write_benchmark(tmp_path / "bench.jsonl", photo_paths)
    grid = load_grid(_write_grid(tmp_path, repo_root, benchmark))
    out = tmp_path / "results"

    paths = run_grid(grid, out)
    key = grid.benchmarks[0].key
    assert key.startswith("eval_fixture__query__annotations=") and key.endswith("__limit=4")
    # the cell with images and its image-withheld twin (the leaderboard's modality gain)
    assert [path.name for path in paths] == [f"rms-sample__tiny-llava__f1__{key}.json",
                                             f"rms-sample__tiny-llava__f1__{key}__text-only.json"]
    assert json.loads(paths[1].read_text())["text_only"] is True
    result = json.loads(paths[0].read_text())
    assert result["audit"]["verdict"] in ("clean", "confounded", "not audited (one class)")
    assert result["schema_version"] == RESULT_SCHEMA_VERSION and result["key"] == key
    assert result["training"]["held_out_from"] == ["rms"] and result["training"]["train_fraction"] == 1.0
    assert result["judge"]["metadata"]["global_step"] == 1  # provenance from the recipe's judge_metadata.json
    assert result["judge"]["adapter"].endswith("judges/rms-sample__tiny-llava__f1/adapter")
    assert result["benchmark"]["n_items"] == 4 and result["n"] == 4 and result["mode"] == "fast"
    assert (out / "grid.yaml").is_file()

    # Rerun: every cell is finished, so nothing is trained, loaded or scored.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished grid must not train or load a judge again")

    monkeypatch.setattr(grid_module, "obtain_judge_dir", refuse)
    monkeypatch.setattr(grid_module, "judge_for", refuse)
    assert run_grid(grid, out) == paths

    # A lost cell is rescored from the prediction cache, with the trained judge reused (no training).
    monkeypatch.undo()
    monkeypatch.setattr("recipes.train.train", refuse)
    before = cached_answers(out / "predictions")
    paths[0].unlink()
    run_grid(grid, out)
    assert json.loads(paths[0].read_text())["primary"] == result["primary"]
    assert cached_answers(out / "predictions") == before  # every prediction read from the cache, none made again


def test_grid_config_errors_name_file_and_entry(tmp_path, repo_root, photo_paths, capsys):
    benchmark = write_benchmark(tmp_path / "bench.jsonl", photo_paths)
    bad_bench = _write_grid(tmp_path, repo_root, benchmark, benchmarks=[{"name": "no_such_bench"}])
    with pytest.raises(GridError, match=r"grid.yaml: benchmarks.0: unknown benchmark 'no_such_bench'"):
        load_grid(bad_bench)
    assert main([str(bad_bench), "--out", str(tmp_path / "o")]) == 2
    assert "unknown benchmark 'no_such_bench'" in capsys.readouterr().err

    bad_fraction = _write_grid(tmp_path, repo_root, benchmark, datasets=[
        {"name": "d", "sources": [{"name": "rms"}], "train_fractions": [0, 2]}])
    with pytest.raises(GridError, match=r"datasets.0.train_fractions: train fractions must be in \(0, 1\]"):
        load_grid(bad_fraction)
    bad_recipe = _write_grid(tmp_path, repo_root, benchmark, models=[{"recipe": "recipes/nope/qlora.yaml"}])
    with pytest.raises(GridError, match=r"models.0.recipe: recipe 'recipes/nope/qlora.yaml' not found"):
        load_grid(bad_recipe)
    bad_judge = _write_grid(tmp_path, repo_root, benchmark, judge={"mode": "fast", "temperature": 0.7})
    with pytest.raises(GridError, match=r"judge.temperature: unknown key; allowed keys: batch_size, load_in_4bit"):
        load_grid(bad_judge)


def test_dry_run_lists_cells_and_a_scale_experiment_expands_fractions(tmp_path, repo_root, photo_paths, capsys):
    benchmark = write_benchmark(tmp_path / "bench.jsonl", photo_paths)
    path = _write_grid(tmp_path, repo_root, benchmark, datasets=[
        {"name": "rms-sample", "sources": [{"name": "rms"}], "train_fractions": [0.25, 0.5, 1.0]},
        {"name": "base", "zero_shot": True}])
    assert main([str(path), "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fixture = load_grid(path).benchmarks[0].key
    twin = f"{fixture}__text-only"  # each multimodal cell again with the image withheld (modality gain)
    assert lines == [
        f"todo  rms-sample__tiny-llava__f0.25  {fixture}",
        f"todo  rms-sample__tiny-llava__f0.25  {twin}",
        f"todo  rms-sample__tiny-llava__f0.5  {fixture}",
        f"todo  rms-sample__tiny-llava__f0.5  {twin}",
        f"todo  rms-sample__tiny-llava__f1  {fixture}",
        f"todo  rms-sample__tiny-llava__f1  {twin}",
        f"todo  zero-shot__tiny-llava  {fixture}",
        "todo  zero-shot__tiny-llava  rms__query__limit=4",
        f"todo  zero-shot__tiny-llava  {twin}",
        "todo  zero-shot__tiny-llava  rms__query__limit=4__text-only",
    ]


def test_a_cell_of_another_schema_version_stops_the_grid_with_a_clear_error(tmp_path, repo_root, photo_paths, capsys):
    benchmark = write_benchmark(tmp_path / "bench.jsonl", photo_paths)
    path = _write_grid(tmp_path, repo_root, benchmark)
    stale = tmp_path / "o" / "cells" / f"rms-sample__tiny-llava__f1__{load_grid(path).benchmarks[0].key}.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"schema_version": "0"}))
    assert main([str(path), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "__limit=4.json: result schema_version '0'" in err and "delete the file and rerun" in err
