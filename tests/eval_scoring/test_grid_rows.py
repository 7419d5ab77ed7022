"""Any judge is a grid row: a judge the grid trains, an existing adapter, an API judge, a callable judge and the
sanity rows end up on one leaderboard, each with the provenance its adapter's metadata records; and a judge
scored with eval.score gets the same leaderboard row as the same judge scored by the grid."""

from __future__ import annotations

import shutil

import pytest
import yaml

from eval.grid import run_grid
from eval.grid_config import GridError, load_grid
from eval.leaderboard import write_leaderboard
from eval.leaderboard_rows import load_rows

from .conftest import ChatServer, write_benchmark

RUN = "rms-sample__tiny_llava__f1"


def _grid(tmp_path, repo_root, benchmark_file, **changes):
    config = {
        "name": "rows",
        "datasets": [{"name": "rms-sample", "sources": [{"name": "rms", "split": "train"}]}],
        "models": [{"name": "tiny_llava", "recipe": str(repo_root / "recipes/tiny_llava/qlora.yaml"),
                    "overrides": {"training.max_steps": 1, "training.save_steps": 1}}],
        "benchmarks": [{"name": "eval_fixture", "options": {"annotations": str(benchmark_file)}, "limit": 6},
                       {"name": "rms", "split": "test", "limit": 4}],  # the trained judges' own source
        "judge": {"mode": "fast", "batch_size": 4},
        "n_bootstrap": 50,
        "modality_gain": False,
        "sanity_judges": [],
        **changes,
    }
    path = tmp_path / f"grid-{len(list(tmp_path.glob('grid-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_trained_existing_api_callable_and_sanity_judges_share_one_leaderboard(tmp_path, repo_root, photo_paths):
    from eval.score import main as score

    benchmark = write_benchmark(tmp_path / "bench.jsonl", photo_paths)
    out = tmp_path / "results"
    run_grid(load_grid(_grid(tmp_path, repo_root, benchmark)), out)  # trains the judge
    existing = tmp_path / "downloaded-judge"  # the same judge as someone else's adapter folder
    shutil.copytree(out / "judges" / RUN, existing)

    with ChatServer(lambda body: "unsafe" if "fire" in str(body) else "safe") as server:
        judges = [
            {"name": "their-adapter", "adapter": str(existing / "adapter")},
            {"name": "gpt-judge", "kind": "api", "model": "judge-model", "base_url": server.url},
            {"name": "keywords", "kind": "python:eval.judges.rules:harmful_keywords"},
        ]
        grid = load_grid(_grid(tmp_path, repo_root, benchmark, judges=judges, sanity_judges=["constant:unsafe"]))
        run_grid(grid, out)

    rows = {row.run_id: row for row in load_rows(out)}
    assert set(rows) == {RUN, "judge__their-adapter", "judge__gpt-judge", "judge__keywords",
                         "reference__constant-unsafe"}
    trained, adapter = rows[RUN], rows["judge__their-adapter"]
    # the existing adapter's provenance is what its metadata records, as for the judge the grid trained
    assert (adapter.dataset, adapter.train_fraction, adapter.model) == ("rms-sample", 1.0, "tiny_llava")
    assert (trained.dataset, trained.train_fraction, trained.model) == ("rms-sample", 1.0, "tiny_llava")
    assert adapter.judge_metadata and (out / adapter.judge_metadata).resolve() == existing / "judge_metadata.json"
    # both are held out of RMS, which they were trained on; judges trained on nothing are scored on both
    assert len(trained.cells) == len(adapter.cells) == 1 and not any("rms" in key for key in adapter.cells)
    assert adapter.score == trained.score  # the same weights, the same verdicts
    for name in ("judge__gpt-judge", "judge__keywords"):
        assert rows[name].dataset == name.removeprefix("judge__") and len(rows[name].cells) == 2
    assert rows["judge__gpt-judge"].model == "judge-model" and not rows["judge__gpt-judge"].zero_shot  # fraction n/a
    assert rows["reference__constant-unsafe"].reference

    # The same adapter scored with eval.score on the grid's benchmarks: the same row (RMS held out again).
    scored = tmp_path / "scored"
    assert score(["--suite", str(grid.path), "--adapter", str(existing / "adapter"), "--mode", "fast",
                  "--n-bootstrap", "50", "--out", str(scored)]) == 0
    [alone] = load_rows(scored)
    same = ("dataset", "model", "train_fraction", "judge", "score", "score_ci", "n_items", "n_benchmarks", "counted")
    assert {field: getattr(alone, field) for field in same} == {field: getattr(adapter, field) for field in same}
    assert (scored / alone.judge_metadata).resolve() == (out / adapter.judge_metadata).resolve()


def test_existing_judges_are_checked_before_anything_runs(tmp_path, repo_root, photo_paths):
    benchmark = write_benchmark(tmp_path / "bench.jsonl", photo_paths)
    cases = [
        ([{"name": "x", "kind": "api", "model": "m"}], "judges.0: an api judge needs 'model' and 'base_url'"),
        ([{"name": "x", "kind": "constant:safe", "adapter": "a"}], "judge kind 'constant:safe' is a sanity judge and takes no adapter"),
        ([{"name": "x", "adapter": "a", "tasks": "query"}], "judges.0.tasks: unknown key"),
        ([{"name": "x", "adapter": "a"}, {"name": "x", "kind": "random:0"}], "every judge needs its own name"),
    ]
    for judges, message in cases:
        with pytest.raises(GridError, match=message):
            load_grid(_grid(tmp_path, repo_root, benchmark, judges=judges))


def fire_rule(example):
    """A callable judge that is no reference row: unsafe when the request mentions fire."""
    return "unsafe" if "fire" in example.text.lower() else "safe"


fire_rule.reads_images = False


def test_a_grid_of_existing_judges_only_trains_nothing_and_ranks_them(tmp_path, repo_root, photo_paths):
    benchmark = write_benchmark(tmp_path / "bench.jsonl", photo_paths)
    path = _grid(tmp_path, repo_root, benchmark, datasets=[], models=[], sanity_judges=["constant:unsafe"],
                 judges=[{"name": "fire-rule", "kind": f"python:{__name__}:fire_rule"}])
    out = tmp_path / "results"
    run_grid(load_grid(path), out)

    assert not (out / "judges").exists()
    rows = {row.run_id: row for row in load_rows(out)}
    assert set(rows) == {"judge__fire-rule", "reference__constant-unsafe"}
    rule = rows["judge__fire-rule"]
    assert (rule.dataset, rule.reference, len(rule.cells)) == ("fire-rule", False, 2)
    # not trained by us and not a model zero-shot: the leaderboard gives it no fraction, and does not call it zero-shot
    assert (rule.train_fraction, rule.zero_shot) == (None, False)
    write_leaderboard(out)
    assert "| fire-rule | n/a |" in (out / "leaderboard.md").read_text()


def test_a_grid_needs_judges_to_train_or_to_score(tmp_path, repo_root, photo_paths):
    benchmark = write_benchmark(tmp_path / "bench.jsonl", photo_paths)
    cases = [
        ({"models": []}, "'datasets' needs 'models': the grid trains every dataset on every model"),
        ({"datasets": []}, "'models' needs 'datasets'"),
        ({"datasets": [], "models": []}, "give 'datasets' and 'models' .* and/or 'judges'"),
    ]
    for changes, message in cases:
        with pytest.raises(GridError, match=message):
            load_grid(_grid(tmp_path, repo_root, benchmark, **changes))


@pytest.mark.slow
def test_a_guard_model_is_a_grid_row_with_its_own_prompt_and_verdict_format(tmp_path, repo_root, photo_paths):
    """A tiny random Mllama (Llama Guard 3 Vision's architecture, its chat template) as a ``judges:`` entry: the row
    is named by the entry, its model is the base model, and its answers went through the guard's format."""
    import json

    from recipes.tiny import tiny_model_path

    benchmark = write_benchmark(tmp_path / "bench.jsonl", photo_paths)
    base_model = str(tiny_model_path("mllama"))
    path = _grid(tmp_path, repo_root, benchmark, datasets=[], models=[],
                 benchmarks=[{"name": "eval_fixture", "options": {"annotations": str(benchmark)}, "limit": 2}],
                 judges=[{"name": "guard", "kind": "llama-guard", "base_model": base_model, "max_new_tokens": 4}])
    out = tmp_path / "results"
    run_grid(load_grid(path), out)

    [row] = load_rows(out)
    assert (row.run_id, row.dataset, row.model, row.train_fraction) == ("judge__guard", "guard", base_model, None)
    assert not row.zero_shot  # a guard model was trained by its authors: not a zero-shot row
    [cell] = (out / "cells").glob("judge__guard__*.json")
    result = json.loads(cell.read_text())
    assert result["judge"]["format"] == "llama-guard-3-vision" and result["mode"] == "generative"


def test_another_judge_under_a_used_name_is_refused_not_given_the_old_cells(tmp_path, repo_root, photo_paths, capsys):
    from eval.grid import main

    benchmark = write_benchmark(tmp_path / "bench.jsonl", photo_paths)
    out = tmp_path / "results"
    first = _grid(tmp_path, repo_root, benchmark, datasets=[], models=[], sanity_judges=[],
                  judges=[{"name": "rule", "kind": f"python:{__name__}:fire_rule", "batch_size": 2}])
    run_grid(load_grid(first), out)
    # another batch size is the same judge: its cells are finished
    same = _grid(tmp_path, repo_root, benchmark, datasets=[], models=[], sanity_judges=[],
                 judges=[{"name": "rule", "kind": f"python:{__name__}:fire_rule", "batch_size": 8}])
    assert main([str(same), "--out", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("done  judge__rule") == 2

    other = _grid(tmp_path, repo_root, benchmark, datasets=[], models=[], sanity_judges=[],
                  judges=[{"name": "rule", "kind": "python:eval.judges.rules:harmful_keywords"}])
    assert main([str(other), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "judges entry 'rule' now gives" in error and "give the new judge its own name, or delete cells/judge__rule__*" in error
