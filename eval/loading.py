"""Load a benchmark's examples for a spec, with the provenance a result records, and refuse to score a
multimodal benchmark whose images are missing (`MissingImagesError`), never a silent text-only score."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.spec import BenchmarkSpec
from judging.records import JudgeExample
from rms_dataset import SAFE, UNSAFE


class MissingImagesError(ValueError):
    """A multimodal benchmark was asked to be scored with images that are not there."""


@dataclass
class LoadedBenchmark:
    spec: BenchmarkSpec
    examples: list[JudgeExample]
    single_class: str | None
    provenance: dict[str, Any]


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def load_benchmark(spec: BenchmarkSpec) -> LoadedBenchmark:
    from judging.sources.registry import get_source

    source = get_source(spec.name, **spec.options)
    if spec.task not in source.tasks:
        raise ValueError(f"benchmark {spec.name!r} has no {spec.task!r} task; it supports {list(source.tasks)}")
    examples = []
    for example in source.examples(spec.split, spec.task):
        examples.append(example)
        if spec.limit is not None and len(examples) >= spec.limit:
            break
    if not examples:
        raise ValueError(f"benchmark {spec.name!r} ({spec.split}/{spec.task}) yielded no examples; check its options")
    single_class_for = getattr(source, "single_class_for", None)
    single_class = single_class_for(spec.task) if single_class_for else source.single_class
    annotations = getattr(source, "annotations", None)
    images = getattr(source, "images", None)
    report = getattr(source, "report", None)
    provenance = {
        "name": spec.name,
        "split": spec.split,
        "task": spec.task,
        "limit": spec.limit,
        "options": dict(spec.options),
        "revision": getattr(images, "revision", None) or spec.options.get("revision"),
        "hub_dataset": getattr(images, "repo_id", None),  # where the images came from (hub_dataset or a fetch)
        "annotations": str(annotations) if annotations else None,
        "annotations_sha256": _file_sha256(annotations) if annotations and Path(annotations).is_file() else None,
        "n_items": len(examples),
        "n_by_label": {label: sum(example.label == label for example in examples) for label in (SAFE, UNSAFE)},
        "n_missing_images": count_missing_images(examples),
        "single_class": single_class,
    }
    if report is not None and hasattr(report, "excluded"):
        provenance["excluded"] = dict(report.excluded)
    return LoadedBenchmark(spec, examples, single_class, provenance)


def count_missing_images(examples: list[JudgeExample]) -> int:
    """Items whose image the source could not find (it marks them with ``meta["missing_image"]``); items
    that have no image by design (text-only benchmarks) are not missing anything."""
    return sum(example.image is None and bool(example.meta.get("missing_image")) for example in examples)


def check_images(benchmark: LoadedBenchmark) -> None:
    """Refuse to score a multimodal benchmark whose images are missing (unless the spec is text-only)."""
    missing = [example for example in benchmark.examples if example.image is None and example.meta.get("missing_image")]
    if not missing or benchmark.spec.text_only:
        return
    spec = benchmark.spec
    raise MissingImagesError(
        f"{spec.name} ({spec.task}): {len(missing)} of {len(benchmark.examples)} items have no image "
        f"(first missing: {missing[0].meta['missing_image']!r}). Put the benchmark's images in a folder and pass "
        f"--option image_root=DIR (grid/suite: options.image_root; `python -m eval.benchmarks --benchmark "
        f"{spec.name} --show-missing 5` lists them; docs/eval_benchmarks.md says where each benchmark's images "
        "come from), or score without images on purpose with --text-only (grid/suite: text_only: true)."
    )
