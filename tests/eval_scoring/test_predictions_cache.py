"""Predictions are written per item as they are scored, and an interrupted evaluation resumes."""

from __future__ import annotations

import json

import pytest

from eval.predictions import predictions_path, read_predictions, score_cached

from .conftest import KeywordJudge


def test_second_run_scores_nothing_and_returns_the_same_predictions(tmp_path, judge_examples):
    judge = KeywordJudge()
    first = score_cached(judge, judge_examples, tmp_path)
    again = KeywordJudge()
    second = score_cached(again, judge_examples, tmp_path)
    assert again.scored == []
    assert [item.prediction for item in second] == [item.prediction for item in first]
    path = predictions_path(tmp_path, judge.judge_id, "fixture", "query")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {(line["source_id"], line["task"], line["judge_id"]) for line in lines} == {
        (example.source_id, "query", judge.judge_id) for example in judge_examples}


def test_interrupted_run_resumes_with_only_the_missing_items(tmp_path, judge_examples):
    class CrashingJudge(KeywordJudge):
        def score(self, examples):
            if len(self.scored) >= 2:
                raise KeyboardInterrupt("simulated interruption")
            return super().score(examples)

    crashing = CrashingJudge()
    with pytest.raises(KeyboardInterrupt):
        score_cached(crashing, judge_examples, tmp_path, chunk_size=2)
    resumed = KeywordJudge()
    items = score_cached(resumed, judge_examples, tmp_path, chunk_size=2)
    assert resumed.scored == [example.source_id for example in judge_examples[2:]]
    assert [item.example.source_id for item in items] == [example.source_id for example in judge_examples]
    assert all(item.prediction.label is not None for item in items)


def test_truncated_last_line_is_rescored_and_corrupt_middle_line_is_an_error(tmp_path, judge_examples):
    judge = KeywordJudge()
    score_cached(judge, judge_examples, tmp_path)
    path = predictions_path(tmp_path, judge.judge_id, "fixture", "query")
    text = path.read_text()
    path.write_text(text[: len(text) - 20])  # the process died while writing the last record
    resumed = KeywordJudge()
    score_cached(resumed, judge_examples, tmp_path)
    assert resumed.scored == [judge_examples[-1].source_id]
    assert len(read_predictions(path, judge.judge_id)) == len(judge_examples)

    lines = path.read_text().splitlines()
    lines[1] = lines[1][:10]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r":2: not valid JSON"):
        score_cached(KeywordJudge(), judge_examples, tmp_path)


def test_duplicate_ids_are_refused(tmp_path, judge_examples):
    with pytest.raises(ValueError, match="occurs twice"):
        score_cached(KeywordJudge(), [judge_examples[0], judge_examples[0]], tmp_path)
