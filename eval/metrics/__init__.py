"""Safety-judge metrics. ``compute_metrics`` is the plain function; ``load_metric()`` returns the same
computation as an `evaluate` metric loaded offline from this repository (``eval/metrics/rms_safety``)."""

from __future__ import annotations

from pathlib import Path

from eval.metrics.rms_safety.safety_math import (  # noqa: F401
    BINARY_METRICS,
    SINGLE_CLASS_METRICS,
    auroc,
    compute_metrics,
)

METRIC_DIR = Path(__file__).resolve().parent / "rms_safety"


def load_metric(**kwargs):
    """The `rms_safety` evaluate metric, loaded by local path (no Hub access needed)."""
    import evaluate

    return evaluate.load(str(METRIC_DIR), **kwargs)
