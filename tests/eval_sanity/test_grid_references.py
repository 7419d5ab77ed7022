"""Every grid scores the sanity judges on its benchmarks as reference rows (no model, no training), and its
spec is a typed config: each mistake is one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eval.grid import main, score_references
from eval.grid_config import GridError, load_grid
from eval.leaderboard_rows import load_sections

REPO = Path(__file__).resolve().parents[2]


def write_grid(tmp_path, **changes):
    config = {"name": "refs", "datasets": [{"name": "base", "zero_shot": True}],
              "models": [{"name": "tiny-llava", "recipe": str(REPO / "recipes/tiny_llava/qlora.yaml")}],
              "benchmarks": [{"name": "salad"}, {"name": "mssbench"}], "n_bootstrap": 50}
    config.update(changes)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_four_sanity_judges_are_scored_on_every_benchmark_and_shown_as_reference_rows(tmp_path, capsys):
    grid = load_grid(write_grid(tmp_path))
    # the default reference rows: the sanity judges and the keyword baselines (each on its own task)
    assert grid.sanity_judges == ["constant:unsafe", "constant:safe", "random:0", "oracle:0.9:0",
                                  "python:eval.judges.rules:harmful_keywords", "python:eval.judges.rules:refusal_phrases"]
    grid = load_grid(write_grid(tmp_path, sanity_judges=["constant:unsafe", "constant:safe", "random:0", "oracle:0.9:0"],
                                modality_gain=False))
    assert main([str(grid.path), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "reference__" in line]
    assert listed[:2] == ["todo  reference__constant-unsafe  salad__query", "todo  reference__constant-unsafe  mssbench__query"]
    assert len(listed) == 8
    paths = score_references(grid, tmp_path / "out")
    assert len(paths) == 8 and all(path.is_file() for path in paths)
    assert score_references(grid, tmp_path / "out") == paths  # finished cells are not rescored
    [section] = load_sections(tmp_path / "out")
    scores = {row.judge: row.score for row in section.rows}
    assert all(row.reference for row in section.rows)
    assert scores["constant:unsafe"] == scores["constant:safe"] == 0.5 and scores["oracle:0.9:0"] > 0.8


def test_no_reference_rows_when_the_grid_says_so(tmp_path):
    grid = load_grid(write_grid(tmp_path, sanity_judges=[]))
    assert score_references(grid, tmp_path / "out") == []


def test_a_keyword_baseline_is_a_reference_row_scored_only_on_its_task(tmp_path):
    grid = load_grid(write_grid(tmp_path, sanity_judges=["python:eval.judges.rules:harmful_keywords",
                                                         "python:eval.judges.rules:refusal_phrases"], modality_gain=False))
    paths = score_references(grid, tmp_path / "out")
    assert [path.name.split("__")[1] for path in paths] == ["python-eval.judges.rules-harmful_keywords"] * 2
    [section] = load_sections(tmp_path / "out")
    assert all(row.reference for row in section.rows) and section.rows[0].score is not None


@pytest.mark.parametrize("changes, message", [
    ({"sanity_judges": ["random:x"]}, "sanity_judges: judge kind 'random:x' is not a sanity judge"),
    ({"n_bootstrap": "200"}, "n_bootstrap: Input should be a valid integer"),
    ({"datasets": [{"name": "d"}]}, "datasets.0: give 'sources' (recipe data.sources entries) or 'zero_shot: true'"),
    ({"datasets": [{"name": "d", "sources": [{"name": "nope"}]}]}, "datasets.0.sources: sources[0]: unknown source 'nope'"),
    ({"judge": {"mode": "fastest"}}, "judge.mode: Input should be 'fast' or 'generative'"),
    ({"benchmarks": [{"name": "salad", "limit": 0}]}, "benchmarks.0.limit: Input should be greater than 0"),
    ({"suite": "x.yaml"}, "(top level): give either 'benchmarks' (a list of suite entries) or 'suite: <benchmarks.yaml>'"),
    ({"modles": []}, "modles: unknown key; allowed keys: benchmarks, datasets, judge, judges, modality_gain, models, "
                     "n_bootstrap, name, sanity_judges, seed, suite"),
])
def test_a_bad_grid_is_one_line_naming_the_key_and_exits_2(tmp_path, capsys, changes, message):
    path = write_grid(tmp_path, **changes)
    with pytest.raises(GridError) as caught:
        load_grid(path)
    assert str(caught.value).startswith(f"{path}: {message}") and len(str(caught.value).splitlines()) == 1
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_grid_naming_a_suite_reads_it_typed(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("benchmarks:\n  - {name: salad, limit: 4}\n")
    grid = load_grid(_without_benchmarks(write_grid(tmp_path), "suite.yaml"))
    # the entry and its image-withheld twin (modality gain)
    assert [(spec.name, spec.limit, spec.text_only) for spec in grid.benchmarks] == [("salad", 4, False),
                                                                                      ("salad", 4, True)]
    suite.write_text("benchmarks:\n  - {name: salad, limit: four}\n")
    with pytest.raises(GridError, match=r"suite.yaml: benchmarks.0.limit:"):
        load_grid(grid.path)


def _without_benchmarks(path: Path, suite: str) -> Path:
    data = yaml.safe_load(path.read_text())
    del data["benchmarks"]
    data["suite"] = suite
    path.write_text(yaml.safe_dump(data))
    return path


def test_missing_benchmark_images_stop_the_grid_before_any_training(tmp_path, monkeypatch):
    from eval.grid import run_grid
    from eval.loading import MissingImagesError

    def train(*args, **kwargs):
        raise AssertionError("trained although a benchmark's images are missing")

    monkeypatch.setattr("recipes.train.train", train)
    grid = load_grid(write_grid(tmp_path, datasets=[{"name": "rms-sample", "sources": [{"name": "rms"}]}]))
    with pytest.raises(MissingImagesError, match=r"salad \(query\): 20 of 20 items have no image"):
        run_grid(grid, tmp_path / "out")
    assert not (tmp_path / "out" / "cells").exists()  # nothing scored either
    text_only = load_grid(write_grid(tmp_path, benchmarks=[{"name": "salad", "text_only": True}], sanity_judges=[],
                                     datasets=[{"name": "base", "zero_shot": True}]))
    from eval.grid import check_benchmark_images

    check_benchmark_images(text_only)  # labelled text-only on purpose: nothing to check
