"""`rms_safety`: safety-judge metrics as an `evaluate` metric kept in this repository (loads offline by path).

    import evaluate
    metric = evaluate.load("eval/metrics/rms_safety")          # or the path of this .py file
    metric.compute(predictions=["unsafe", None, "safe"], references=["unsafe", "unsafe", "safe"],
                   probabilities=[0.9, 0.4, 0.2], categories=["fire", "fire", "water"],
                   single_class=None, n_bootstrap=1000, seed=0)

The arithmetic lives in ``safety_math.py`` next to this file (plain numpy; also exposed as
``eval.metrics.compute_metrics``).
"""

import datasets
import evaluate

from .safety_math import compute_metrics

_DESCRIPTION = """Accuracy, precision/recall/F1 on the unsafe class, AUROC (rank-based, ties averaged) from
P(unsafe), over-refusal rate on gold-safe items, detection rate for single-class benchmarks, unparseable count
(None predictions are counted and scored as wrong), per-category breakdown, and percentile bootstrap 95%
confidence intervals with a fixed seed."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of "safe" / "unsafe" (or "0"/"1" with 1 = unsafe; the plain compute_metrics also takes ints); None = the judge's answer was unparseable.
    references: list of gold labels "safe" / "unsafe" (or "0"/"1").
    probabilities: optional list of P(unsafe) per item, for AUROC.
    categories: optional list of category names, for the per-category breakdown.
    single_class: None for a binary benchmark; "unsafe" / "safe" when every gold label is that class (reports the
        detection rate instead of F1).
    n_bootstrap: bootstrap resamples for the 95% intervals (0 disables them). seed: resampling seed.
Returns:
    dict with n, n_unparseable, unparseable_rate, the metrics (None where undefined), ci, per_category.
"""

# evaluate type-checks string columns item by item and rejects None, so None travels as this marker inside
# the metric's storage and is turned back into None before computing.
UNPARSEABLE_MARK = "<unparseable>"


def _mark(predictions):
    return None if predictions is None else [UNPARSEABLE_MARK if p is None else p for p in predictions]


_CITATION = """@inproceedings{qu2025rms,
  title={Self-adaptive Dataset Construction for Real-World Multimodal Safety Scenarios},
  author={Qu and others}, booktitle={Findings of EMNLP}, year={2025}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RmsSafety(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # one feature set: with several, evaluate infers the set from the first item and fails on None
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Compute the safety metrics (None predictions = unparseable: counted and scored as wrong)."""
        return super().compute(predictions=_mark(predictions), references=references, **kwargs)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions (None = unparseable) and references."""
        return super().add_batch(predictions=_mark(predictions), references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one prediction (None = unparseable) and reference."""
        prediction = UNPARSEABLE_MARK if prediction is None else prediction
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(self, predictions, references, probabilities=None, categories=None, single_class=None,
                 n_bootstrap=1000, seed=0):
        predictions = [None if p == UNPARSEABLE_MARK else p for p in predictions]
        return compute_metrics(predictions, references, probabilities=probabilities, categories=categories,
                               single_class=single_class, n_bootstrap=n_bootstrap, seed=seed)
