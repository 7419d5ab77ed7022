"""Score one judge on one benchmark: load the benchmark's examples, score them through the prediction
cache, compute metrics, and write a result JSON with provenance.

`python -m eval.score --benchmark siuo --base-model tiny-llava [--adapter DIR] [--mode fast] --out RESULT.json`

A result file is a JSON object with ``schema_version`` (`RESULT_SCHEMA_VERSION`); `read_result` refuses any
other version with a clear error. The *primary* value of a result is the unsafe-class F1, or the detection
rate for single-class benchmarks (every gold label the same): see docs/eval.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eval.judges.base import Judge
from eval.predictions import ScoredItem, score_cached
from judging.records import JudgeExample
from rms_dataset import SAFE, UNSAFE

RESULT_SCHEMA_VERSION = "1"
F1 = "f1"
DETECTION_RATE = "detection_rate"


class ResultSchemaError(ValueError):
    pass


@dataclass(frozen=True)
class BenchmarkSpec:
    """Which benchmark to score on: a registered source name, its options, split, task and an optional limit
    (the first ``limit`` items in the source's order, for smoke tests)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    split: str = "test"
    task: str = "query"
    limit: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str, *, where: str = "benchmark") -> BenchmarkSpec:
        if isinstance(data, str):
            return cls(name=data)
        unknown = set(data) - {"name", "options", "split", "task", "limit"}
        if unknown or "name" not in data:
            raise ValueError(f"{where}: expected keys name, options, split, task, limit; got {sorted(data)}")
        return cls(**data)

    @property
    def key(self) -> str:
        return f"{self.name}__{self.task}" + (f"__{self.split}" if self.split != "test" else "")


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
        "options": {key: str(value) for key, value in spec.options.items()},
        "revision": getattr(images, "revision", None) or spec.options.get("revision"),
        "annotations": str(annotations) if annotations else None,
        "annotations_sha256": _file_sha256(annotations) if annotations and Path(annotations).is_file() else None,
        "n_items": len(examples),
        "n_by_label": {label: sum(example.label == label for example in examples) for label in (SAFE, UNSAFE)},
        "n_missing_images": sum(example.image is None for example in examples),
        "single_class": single_class,
    }
    if report is not None and hasattr(report, "excluded"):
        provenance["excluded"] = dict(report.excluded)
    return LoadedBenchmark(spec, examples, single_class, provenance)


def primary_metric(metrics: dict[str, Any], single_class: str | None) -> tuple[str, float | None, list | None]:
    """(name, value, [low, high]) of the metric a cell is ranked by."""
    name = DETECTION_RATE if single_class else F1
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
) -> dict[str, Any]:
    """Score `judge` on the benchmark (resuming from the prediction cache) and return the result record."""
    benchmark = load_benchmark(spec)
    items = score_cached(judge, benchmark.examples, cache_dir)
    metrics = compute_cell_metrics(items, benchmark.single_class, n_bootstrap=n_bootstrap, seed=seed)
    n_unparseable = sum(item.prediction.label is None for item in items)
    name, value, ci = primary_metric(metrics, benchmark.single_class)
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "judge": {"id": judge.judge_id, **judge.describe(), "metadata": judge_metadata or {}},
        "training": training or {},
        "benchmark": benchmark.provenance,
        "n_unparseable": n_unparseable,
        "primary": {"metric": name, "value": value, "ci": ci},
        "metrics": metrics,
    }


def write_result(path: Path | str, result: dict[str, Any]) -> Path:
    """Atomic write (temp file + rename): a crash never leaves a half-written result that looks finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2, default=str)
    os.replace(temp, path)
    return path


def read_result(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ResultSchemaError(f"{path}: not valid JSON ({error}); delete it to recompute that cell") from error
    version = result.get("schema_version") if isinstance(result, dict) else None
    if version != RESULT_SCHEMA_VERSION:
        raise ResultSchemaError(
            f"{path}: result schema_version {version!r}, this toolkit reads {RESULT_SCHEMA_VERSION!r}; "
            "recompute it with this version (delete the file and rerun the grid) or use the matching toolkit"
        )
    for key in ("judge", "benchmark", "primary", "metrics"):
        if key not in result:
            raise ResultSchemaError(f"{path}: result has no {key!r} field; it was not written by eval.score")
    return result


# ------------------------------------------------------------------------------------------------- CLI


def add_judge_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Flags that build a judge (shared by eval.score and eval.respond)."""
    p = f"--{prefix}" if prefix else "--"
    parser.add_argument(f"{p}kind", default="hf", help="judge kind: hf, llama-guard, llavaguard, api (default hf)")
    parser.add_argument(f"{p}base-model", help="base model: Hub id, local dir, or offline alias smollm2 / tiny-llava")
    parser.add_argument(f"{p}adapter", help="LoRA adapter directory from the recipes (judge_metadata.json is read)")
    parser.add_argument(f"{p}mode", default=None, choices=("fast", "generative"), help="HF scoring path")
    parser.add_argument(f"{p}batch-size", type=int, default=8)
    parser.add_argument(f"{p}max-new-tokens", type=int, default=None, help="generative path: tokens to generate")
    parser.add_argument(f"{p}load-in-4bit", action="store_true", help="load the base model in 4-bit (GPU)")
    parser.add_argument(f"{p}api-model", help="api judge: model name at the endpoint")
    parser.add_argument(f"{p}base-url", help="api judge: OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument(f"{p}policy-file", help="llavaguard: the policy text to prompt with")


def judge_spec_from_args(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    get = lambda name: getattr(args, f"{prefix}{name}".replace("-", "_"))  # noqa: E731
    kind = get("kind")
    if kind == "api":
        if not get("api-model") or not get("base-url"):
            raise SystemExit("an api judge needs --api-model and --base-url")
        return {"kind": "api", "model": get("api-model"), "base_url": get("base-url")}
    spec: dict[str, Any] = {"kind": kind, "base_model": get("base-model"), "adapter": get("adapter"),
                            "batch_size": get("batch-size"), "load_in_4bit": get("load-in-4bit")}
    if get("mode"):
        spec["mode"] = get("mode")
    if get("max-new-tokens"):
        spec["max_new_tokens"] = get("max-new-tokens")
    if kind == "llavaguard" and get("policy-file"):
        spec["policy_file"] = get("policy-file")
    if kind == "hf" and not spec["base_model"] and not spec["adapter"]:
        raise SystemExit("give --base-model (and optionally --adapter)")
    return spec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.score", description=__doc__.splitlines()[0],
                                     epilog="See docs/eval.md.")
    parser.add_argument("--benchmark", required=True, help="registered source name, e.g. siuo, vlsbench, mssbench")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="benchmark source option (annotations=..., image_root=...); repeatable")
    parser.add_argument("--task", default="query", choices=("query", "response"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="score only the first N items")
    parser.add_argument("--out", required=True, help="result JSON to write")
    parser.add_argument("--cache-dir", help="prediction cache (default: <out dir>/predictions)")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    add_judge_arguments(parser)
    return parser


def parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--option {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        options[key] = value
    return options


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from eval.judges import make_judge

    spec = BenchmarkSpec(args.benchmark, parse_options(args.option), args.split, args.task, args.limit)
    judge = make_judge(judge_spec_from_args(args))
    out = Path(args.out)
    cache_dir = Path(args.cache_dir) if args.cache_dir else out.parent / "predictions"
    result = evaluate(judge, spec, cache_dir, n_bootstrap=args.n_bootstrap,
                      judge_metadata=getattr(getattr(judge, "loaded", None), "adapter_metadata", None))
    write_result(out, result)
    primary = result["primary"]
    print(f"{spec.name} ({spec.task}): {primary['metric']} = {primary['value']} CI {primary['ci']}; "
          f"{result['benchmark']['n_items']} items, {result['n_unparseable']} unparseable -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
