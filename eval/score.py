"""Score one judge on one benchmark: load the benchmark's examples, score them through the prediction
cache, compute metrics, and write a result JSON with provenance.

`python -m eval.score --benchmark siuo --base-model tiny-llava [--adapter DIR] [--mode fast] --out RESULT.json`

A result file (a *cell*) is a JSON object with ``schema_version`` (`RESULT_SCHEMA_VERSION`); `read_result`
refuses any other version with a clear error. Every cell carries ``n`` (items scored), ``missing_images``,
``text_only``, ``options``, ``mode``, ``label_mass`` (fast mode: mean probability mass on the label tokens;
null otherwise), ``format_mismatch`` and ``unparseable`` next to ``primary`` and ``metrics``. The *primary*
value is the balanced accuracy, or the detection rate for single-class benchmarks: see docs/eval.md.

Images: a multimodal benchmark whose images are missing is an error (`MissingImagesError`, naming the
benchmark, how many are missing and where to put them), never a silent text-only score; ``--text-only``
scores every item without its image and labels the cell (and its key) text-only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from atomic_files import write_atomic
from eval.audit import audit_benchmark
from eval.judges.base import Judge
from eval.predictions import ScoredItem, score_cached
from judging.format import FORMAT_MISMATCH_MASS
from judging.records import JudgeExample
from rms_dataset import SAFE, UNSAFE

RESULT_SCHEMA_VERSION = "2"
F1 = "f1"
BALANCED_ACCURACY = "balanced_accuracy"  # the per-benchmark value of the dataset score (docs/eval.md)
DETECTION_RATE = "detection_rate"
# A generative cell with more unparseable answers than this fraction is flagged format_mismatch.
UNPARSEABLE_MISMATCH_RATE = 0.5


class ResultSchemaError(ValueError):
    pass


class MissingImagesError(ValueError):
    """A multimodal benchmark was asked to be scored with images that are not there."""


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line, the value read as a YAML scalar (``false`` -> False, ``3`` -> 3,
    ``[chat]`` -> a list), exactly as the same option written in a grid or suite YAML. Used by every CLI."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--option expects KEY=VALUE, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"--option {text!r}: the value is not a YAML scalar ({error})") from None


_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.+-]{1,24}")


def _option_slug(value: Any) -> str:
    """A short, file-name-safe rendering of an option value for cell keys (a hash for paths and long values)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = "+".join(str(item) for item in value)
    else:
        text = str(value)
    if _PLAIN_VALUE.fullmatch(text):
        return text
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class BenchmarkSpec:
    """Which benchmark to score on: a registered source name, its options, split, task, an optional limit
    (the first ``limit`` items in the source's order, for smoke tests) and ``text_only`` (score every item
    without its image; the cell is labelled and keyed as text-only). Suite and grid entries are validated
    as `eval.benchmarks.SuiteEntry` (typed) before they become a spec."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    split: str = "test"
    task: str = "query"
    limit: int | None = None
    text_only: bool = False

    @property
    def key(self) -> str:
        """The cell key: everything that selects the items and how they are shown, so that two settings of
        one benchmark (``subset: tiny`` vs the default, a text-only run) never share a file or a column.
        ``figstep__query__subset=tiny``; path-like option values appear as a short hash."""
        parts = [self.name, self.task]
        if self.split != "test":
            parts.append(self.split)
        from eval.benchmarks import LOCATION_OPTIONS  # where images are found does not change what is scored

        parts += [f"{key}={_option_slug(value)}" for key, value in sorted(self.options.items())
                  if key not in LOCATION_OPTIONS]
        from judging.sources import SOURCES

        parts += SOURCES[self.name].key_parts(self.options) if self.name in SOURCES else []
        if self.limit is not None:
            parts.append(f"limit={self.limit}")
        if self.text_only:
            parts.append("text-only")
        return "__".join(parts)


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
) -> dict[str, Any]:
    """Score `judge` on the benchmark (resuming from the prediction cache) and return the result record;
    with ``samples`` (a path), also write the per-sample log there (`eval.samples`). Raises
    `MissingImagesError` when images are missing and the spec is not text-only."""
    benchmark = load_benchmark(spec)
    if getattr(judge, "reads_images", True):  # sanity judges (eval/judges/sanity.py) never look at an image
        check_images(benchmark)
    examples = benchmark.examples
    if spec.text_only:
        examples = [replace(example, image=None) for example in examples]
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
        "n_unparseable": n_unparseable,  # the leaderboard's name until it reads "unparseable"
        "primary": {"metric": name, "value": value, "ci": ci},
        "metrics": metrics,
        "audit": audit_benchmark(benchmark),  # eval.audit: a confounded cell never enters the dataset score
        "samples": Path(samples).name if samples is not None else None,
    }


def mean_label_mass(items: list[ScoredItem]) -> float | None:
    """Mean probability mass on the label tokens over a fast-path cell (None when a judge does not report it)."""
    masses = [item.prediction.extras.get("label_mass") for item in items]
    if not masses or any(mass is None for mass in masses):
        return None
    return sum(masses) / len(masses)


def write_result(path: Path | str, result: dict[str, Any]) -> Path:
    """Whole or not at all (`atomic_files.write_atomic`): a crash never leaves a half-written result that
    looks finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(result, indent=2, default=str))
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
    parser.add_argument(f"{p}kind", default="hf",
                        help="judge kind: hf, llama-guard, llavaguard, api, a sanity judge (constant:unsafe, "
                             "constant:safe, random:SEED, oracle:ACCURACY:SEED) or a callable judge "
                             "python:MODULE:FUNCTION, e.g. python:eval.judges.rules:harmful_keywords (default hf)")
    parser.add_argument(f"{p}base-model", help="base model: Hub id, local dir, or offline alias smollm2 / tiny-llava")
    parser.add_argument(f"{p}adapter", help="LoRA adapter directory from the recipes (judge_metadata.json is read)")
    parser.add_argument(f"{p}mode", default=None, choices=("fast", "generative"),
                        help="HF scoring path (default: fast with --adapter, generative for a zero-shot base model)")
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
    elif kind == "hf":  # a zero-shot base model writes prose first: read what it writes, not two logits
        spec["mode"] = "fast" if spec["adapter"] else "generative"
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
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--benchmark", help="registered source name, e.g. siuo, vlsbench, mssbench")
    which.add_argument("--benchmarks", metavar="A,B,...|list",
                       help="several benchmarks with one model load: their entries in --suite (default "
                            "eval/benchmarks.yaml; a name not in it is scored with default options); --out is then "
                            "a folder. 'list' prints every registered benchmark and exits")
    which.add_argument("--suite", help="score every entry of this suite (or grid) YAML with one model load; --out is a folder")
    parser.add_argument("--option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="benchmark source option (annotations=..., image_root=..., paraphrases=false); the "
                             "value is read as YAML, as in a grid file; repeatable")
    parser.add_argument("--text-only", action="store_true",
                        help="score every item without its image; the cell is labelled and keyed text-only")
    parser.add_argument("--task", default="query", choices=("query", "response"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="score only the first N items")
    parser.add_argument("--out", help="result JSON to write (--benchmarks/--suite: a folder, cells/<key>.json)")
    parser.add_argument("--cache-dir", help="prediction cache (default: <out dir>/predictions)")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    add_judge_arguments(parser)
    return parser


def format_cell_line(result: dict[str, Any], out: Path | str) -> str:
    """One line a person reads after scoring a cell: the primary value and CI, n, missing images,
    unparseable answers, label mass, and the text-only / format-mismatch labels."""
    primary, benchmark = result["primary"], result["benchmark"]
    value = "n/a" if primary["value"] is None else f"{primary['value']:.3f}"
    ci = "" if not primary["ci"] else f" [{primary['ci'][0]:.3f}, {primary['ci'][1]:.3f}]"
    mass = "" if result["label_mass"] is None else f", label mass {result['label_mass']:.2f}"
    flags = (" TEXT-ONLY" if result["text_only"] else "") + (" FORMAT-MISMATCH" if result["format_mismatch"] else "")
    return (f"{result['key']}: {primary['metric']} = {value}{ci}; n={result['n']}, missing images "
            f"{result['missing_images']}, unparseable {result['unparseable']}{mass} ({result['mode']}){flags} "
            f"-> {out}")


def requested_specs(args: argparse.Namespace) -> list[BenchmarkSpec]:
    """The benchmarks a command line asks for: one ``--benchmark``, the ``--benchmarks`` names (their suite
    entries, else default options), or every ``--suite`` entry. Raises ConfigError / ValueError."""
    if args.benchmark:
        return [BenchmarkSpec(args.benchmark, dict(args.option), args.split, args.task, args.limit, args.text_only)]
    from eval.benchmarks import DEFAULT_SUITE, parse_entries
    from eval.sanity import suite_entries

    entries = suite_entries(args.suite or DEFAULT_SUITE)
    if args.benchmarks:
        names = [name.strip() for name in args.benchmarks.split(",") if name.strip()]
        chosen = [entry for entry in entries if entry["name"] in names]
        chosen += parse_entries([{"name": name, "task": args.task} for name in names
                                 if name not in {entry["name"] for entry in chosen}], source="--benchmarks")
        entries = chosen
    return [BenchmarkSpec(**{**entry, "limit": args.limit or entry["limit"],
                             "text_only": args.text_only or entry["text_only"]}) for entry in entries]


def list_benchmarks() -> list[str]:
    """One line per registered benchmark: tasks, items and classes with default options, images present."""
    from judging.sources import SOURCES

    lines = ["| benchmark | tasks | items (test, first task) | unsafe / safe | images present |", "|---|---|---|---|---|"]
    for name, source in sorted(SOURCES.items()):
        try:
            loaded = load_benchmark(BenchmarkSpec(name, task=source.tasks[0]))
        except Exception as error:  # a benchmark with no local annotations: say why, list the rest
            lines.append(f"| {name} | {', '.join(source.tasks)} | not available here: {str(error).splitlines()[0]} | | |")
            continue
        counts = loaded.provenance["n_by_label"]
        with_image = sum(example.image is not None for example in loaded.examples)
        lines.append(f"| {name} | {', '.join(source.tasks)} | {len(loaded.examples)} | {counts[UNSAFE]} / {counts[SAFE]} "
                     f"| {with_image} of {len(loaded.examples)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.benchmarks == "list":
        print("\n".join(list_benchmarks()))
        return 0
    if not args.out:
        parser.error("--out is required")
    from eval.judges import make_judge
    from typed_config import ConfigError

    try:
        specs = requested_specs(args)
        benchmarks = [load_benchmark(spec) for spec in specs]
        judge = make_judge(judge_spec_from_args(args))
        if getattr(judge, "reads_images", True):  # before any scoring: every missing image at once
            for benchmark in benchmarks:
                check_images(benchmark)
    except (ConfigError, ValueError, KeyError) as error:  # MissingImagesError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    single = args.benchmark is not None
    out = Path(args.out)
    cache_dir = Path(args.cache_dir) if args.cache_dir else (out.parent if single else out) / "predictions"
    from eval.samples import samples_path

    for spec in specs:
        path = out if single else out / "cells" / f"{spec.key}.json"
        result = evaluate(judge, spec, cache_dir, n_bootstrap=args.n_bootstrap, samples=samples_path(path),
                          judge_metadata=getattr(getattr(judge, "loaded", None), "adapter_metadata", None))
        write_result(path, result)
        print(format_cell_line(result, path))
        if result["format_mismatch"]:
            print(f"warning: {spec.key}: format mismatch: the judge does not answer with a verdict first (label mass "
                  f"{result['label_mass']}, {result['unparseable']} unparseable); its verdicts here are not its "
                  "answers. Score it with --mode generative, or train it on the judge format.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
