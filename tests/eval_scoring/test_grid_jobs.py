"""A grid spread over independent jobs (`--cell I/N`): each job runs every N-th row (a judge with all its
cells, trained once), and the jobs' cells in one results folder make the leaderboard one run makes."""

from __future__ import annotations

import argparse

import pytest
import yaml

from eval import grid as grid_module
from eval.grid import main
from eval.grid_jobs import JobShare, parse_job_share
from eval.leaderboard import write_leaderboard

from .conftest import KeywordJudge, write_benchmark


@pytest.fixture
def grid_file(tmp_path, repo_root, photo_paths):
    benchmark = write_benchmark(tmp_path / "bench.jsonl", photo_paths)
    config = {
        "name": "jobs",
        "datasets": [{"name": "rms-sample", "sources": [{"name": "rms", "split": "train"}],
                      "train_fractions": [0.5, 1.0]}],
        "models": [{"name": "tiny-llava", "recipe": str(repo_root / "recipes/tiny_llava/qlora.yaml")}],
        "benchmarks": [{"name": "eval_fixture", "options": {"annotations": str(benchmark)}, "limit": 6},
                       {"name": "rms", "split": "test", "limit": 4}],
        "judges": [{"name": "keywords", "kind": "python:eval.judges.rules:harmful_keywords"},
                   {"name": "refusals", "kind": "python:eval.judges.rules:refusal_phrases"}],
        "sanity_judges": ["constant:unsafe", "random:0"],
        "n_bootstrap": 50,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def trainings(monkeypatch, tmp_path):
    """Training replaced by a keyword judge (the split, not QLoRA, is under test); records each training."""
    trained = []

    def fake_training(run, out):
        trained.append(run.id)
        return tmp_path / "judges" / run.id

    monkeypatch.setattr(grid_module, "obtain_judge_dir", fake_training)
    monkeypatch.setattr(grid_module, "judge_for", lambda grid, run, judge_dir: KeywordJudge())
    return trained


def test_two_jobs_make_the_leaderboard_of_one_run_and_train_each_run_once(tmp_path, grid_file, trainings, capsys):
    assert main([str(grid_file), "--out", str(tmp_path / "one")]) == 0
    assert sorted(trainings) == ["rms-sample__tiny-llava__f0.5", "rms-sample__tiny-llava__f1"]
    trainings.clear()

    assert main([str(grid_file), "--out", str(tmp_path / "jobs"), "--cell", "0/2"]) == 0
    first = list(trainings)
    assert main([str(grid_file), "--out", str(tmp_path / "jobs"), "--cell", "1/2"]) == 0
    # rows in order: constant:unsafe, random:0, run f0.5, run f1, keywords, refusals -> job 0 takes 0, 2, 4
    assert first == ["rms-sample__tiny-llava__f0.5"] and trainings == first + ["rms-sample__tiny-llava__f1"]
    assert "(job 1/2)" in capsys.readouterr().out

    one = sorted(path.name for path in (tmp_path / "one" / "cells").iterdir())
    assert sorted(path.name for path in (tmp_path / "jobs" / "cells").iterdir()) == one
    for kind in ("json", "md", "csv"):
        assert (write_leaderboard(tmp_path / "one")[kind].read_text()
                == write_leaderboard(tmp_path / "jobs")[kind].read_text()), kind


def test_a_dry_run_of_a_job_lists_only_its_rows(tmp_path, grid_file, capsys):
    assert main([str(grid_file), "--out", str(tmp_path / "o"), "--dry-run", "--cell", "1/2"]) == 0
    rows = {line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert rows == {"reference__random-0", "rms-sample__tiny-llava__f1", "judge__refusals"}


def test_a_job_share_is_i_of_n_with_i_below_n():
    assert parse_job_share("3/4") == JobShare(3, 4)
    for bad in ("4/4", "1/0", "-1/2", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not I/N with 0 <= I < N"):
            parse_job_share(bad)
    with pytest.raises(SystemExit) as usage:
        main(["grid.yaml", "--out", "x", "--cell", "2/2"])
    assert usage.value.code == 2
