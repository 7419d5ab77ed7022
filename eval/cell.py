"""Score one judge on one benchmark: its examples through the prediction cache, the cell's metrics, and the
result record with provenance (`eval.results` writes it). The *primary* value is the balanced accuracy, or
the detection rate for single-class benchmarks: see docs/eval.md."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eval.audit import audit_benchmark
from eval.judges.base import Judge
from eval.loading import LoadedBenchmark, check_images, load_benchmark
from eval.predictions import ScoredItem, score_cached
from eval.results import RESULT_SCHEMA_VERSION
from eval.spec import BenchmarkSpec
from judging.format import FORMAT_MISMATCH_MASS
from judging.records import JudgeExample

F1 = "f1"
BALANCED_ACCURACY = "balanced_accuracy"  # the per-benchmark value of the dataset score (docs/eval.md)
DETECTION_RATE = "detection_rate"
# A generative cell with more unparseable answers than this fraction is flagged format_mismatch.
UNPARSEABLE_MISMATCH_RATE = 0.5


def primary_metric(metrics: dict[str, Any], single_class: str | None) -> tuple[str, float | None, list | None]:
    """(name, value, [low, high]) of the metric a cell is ranked by."""
    name = DETECTION_RATE if single_class else BALANCED_ACCURACY
    value = metrics.get(name)
    ci = (metrics.get("ci") or {}).get(name)
    return name, value, list(ci) if ci is not None else None


def compute_cell_metrics(items: list[ScoredItem], single_class: str | None, *, n_bootstrap: int, seed: int) -> dict:
    from eval.metrics import compute_metrics

    predictions = [item.prediction.label for item in items]
    references = [item.example.label for item in items]
    probabilities = [item.prediction.p_unsafe for item in items]
    has_probabilities = all(p is not None for p in probabilities)
    return compute_metrics(
        predictions, references,
        probabilities=probabilities if has_probabilities else None,
        categories=[item.example.category for item in items],
        single_class=single_class, n_bootstrap=n_bootstrap, seed=seed,
    )


def evaluate(
    judge: Judge,
    spec: BenchmarkSpec,
    cache_dir: Path | str,
    *,
    judge_metadata: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    samples: Path | str | None = None,
    benchmark: LoadedBenchmark | None = None,
) -> dict[str, Any]:
    """Score `judge` on the benchmark (resuming from the prediction cache) and return the result record;
    with ``samples`` (a path), also write the per-sample log there (`eval.samples`); ``benchmark``: the
    spec's examples when the caller has loaded them already. Raises `MissingImagesError` when images are
    missing and the spec is not text-only."""
    benchmark, examples = cell_examples(judge, spec, benchmark)
    items = score_cached(judge, examples, cache_dir)
    if samples is not None:
        from eval.samples import write_samples

        write_samples(samples, judge, spec.key, items)
    metrics = compute_cell_metrics(items, benchmark.single_class, n_bootstrap=n_bootstrap, seed=seed)
    n_unparseable = sum(item.prediction.label is None for item in items)
    name, value, ci = primary_metric(metrics, benchmark.single_class)
    description = judge.describe()
    label_mass = mean_label_mass(items)
    if label_mass is not None:
        format_mismatch = label_mass < FORMAT_MISMATCH_MASS
    else:
        format_mismatch = n_unparseable > UNPARSEABLE_MISMATCH_RATE * len(items)
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "key": spec.key,
        "judge": {"id": judge.judge_id, **description, "metadata": judge_metadata or {}},
        "training": training or {},
        "benchmark": benchmark.provenance,
        "n": len(items),
        "missing_images": benchmark.provenance["n_missing_images"],
        "text_only": spec.text_only,
        "options": dict(spec.options),
        "mode": description.get("mode"),
        "label_mass": label_mass,
        "format_mismatch": format_mismatch,
        "unparseable": n_unparseable,
        "primary": {"metric": name, "value": value, "ci": ci},
        "metrics": metrics,
        "audit": audit_benchmark(benchmark),  # eval.audit: a confounded cell never enters the dataset score
        "samples": Path(samples).name if samples is not None else None,
    }


def cell_examples(judge: Judge, spec: BenchmarkSpec, benchmark: LoadedBenchmark | None = None,
                  ) -> tuple[LoadedBenchmark, list[JudgeExample]]:
    """The benchmark (loaded unless given) and the examples a cell scores (without images when text-only).
    Raises `MissingImagesError` when images are missing, the spec is not text-only and the judge reads images."""
    benchmark = benchmark or load_benchmark(spec)
    if getattr(judge, "reads_images", True):  # sanity judges (eval/judges/sanity.py) never look at an image
        check_images(benchmark)
    examples = benchmark.examples
    if spec.text_only:
        examples = [replace(example, image=None) for example in examples]
    return benchmark, examples


def mean_label_mass(items: list[ScoredItem]) -> float | None:
    """Mean probability mass on the label tokens over a fast-path cell (None when a judge does not report it)."""
    masses = [item.prediction.extras.get("label_mass") for item in items]
    if not masses or any(mass is None for mass in masses):
        return None
    return sum(masses) / len(masses)
