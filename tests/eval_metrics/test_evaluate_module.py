"""The metric loads offline through `evaluate` by local path and returns what `compute_metrics` returns."""

import evaluate
import pytest

from eval.metrics import METRIC_DIR, compute_metrics, load_metric

PREDICTIONS = ["unsafe", None, "safe", "unsafe", "safe"]
REFERENCES = ["unsafe", "unsafe", "safe", "safe", "safe"]
PROBABILITIES = [0.9, 0.4, 0.2, 0.6, 0.1]
CATEGORIES = ["a", "a", "b", "b", "b"]


@pytest.fixture(scope="module")
def metric():
    return load_metric()


def test_loads_offline_and_matches_the_plain_function(metric, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    kwargs = dict(probabilities=PROBABILITIES, categories=CATEGORIES, n_bootstrap=100, seed=3)
    result = metric.compute(predictions=PREDICTIONS, references=REFERENCES, **kwargs)
    assert result == compute_metrics(PREDICTIONS, REFERENCES, **kwargs)
    assert result["n_unparseable"] == 1  # the None travelled through evaluate's storage


def test_loads_by_folder_relative_to_the_repo_and_by_script_path(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    by_folder = evaluate.load("eval/metrics/rms_safety")
    by_script = evaluate.load(str(METRIC_DIR / "rms_safety.py"))
    for metric in (by_folder, by_script):
        result = metric.compute(predictions=["unsafe", "safe"], references=["unsafe", "unsafe"],
                                single_class="unsafe", n_bootstrap=0)
        assert result["detection_rate"] == 0.5


def test_add_and_add_batch_accept_unparseable_predictions(metric):
    metric.add_batch(predictions=[None, "safe"], references=["unsafe", "safe"])
    metric.add(prediction=None, reference="safe")
    result = metric.compute(n_bootstrap=0)
    # gold unsafe unparseable -> FN; gold safe 'safe' -> TN; gold safe unparseable -> FP
    assert (result["n"], result["n_unparseable"], result["accuracy"], result["over_refusal_rate"]) == (3, 2, 1 / 3, 0.5)
