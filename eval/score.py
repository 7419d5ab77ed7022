"""Score one judge on one or many benchmarks and write one result cell per benchmark, with provenance.

The benchmark's examples are scored through the prediction cache, then the metrics are computed.
Provenance (the cell's ``training`` block) comes from the adapter's ``judge_metadata.json``, exactly as the
grid records it (`eval.provenance`); a benchmark among the judge's training sources is still scored, with a
note, but the leaderboard does not rank the judge there (the grid's hold-out rule, `counts_for`).

`python -m eval.score --benchmark siuo --base-model tiny-llava [--adapter DIR] [--mode fast] --out RESULT.json`

A result file (a *cell*) is a JSON object with ``schema_version`` (`RESULT_SCHEMA_VERSION`); `eval.results.read_result`
refuses any other version with a clear error. Every cell carries ``n`` (items scored), ``missing_images``,
``text_only``, ``options``, ``mode``, ``label_mass`` (fast mode: mean probability mass on the label tokens;
null otherwise), ``format_mismatch`` and ``unparseable`` next to ``primary`` and ``metrics``. The *primary*
value is the balanced accuracy, or the detection rate for single-class benchmarks: see docs/eval.md.

Data-parallel: under `accelerate launch --num_processes N -m eval.score ...` each process scores a slice of
every benchmark and rank 0 writes the cells, identical to one process (`eval.parallel`).

Images: a multimodal benchmark whose images are missing is an error (`MissingImagesError`, naming the
benchmark, how many are missing and where to put them), never a silent text-only score; ``--text-only``
scores every item without its image and labels the cell (and its key) text-only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.benchmarks import list_benchmarks
from eval.cell import cell_examples, evaluate
from eval.cli import add_judge_arguments, judge_spec_from_args, requested_specs
from eval.judges.spec import JudgeSpec
from eval.loading import check_images, load_benchmark
from eval.parallel import GatheredJudge, finish, launched_ranks, score_slice
from eval.provenance import counts_for, training_record
from eval.results import format_cell_line, write_result
from eval.spec import parse_option
from typed_config import ConfigError


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.benchmarks == "list":
        print("\n".join(list_benchmarks()))
        return 0
    if not args.out:
        parser.error("--out is required")
    from eval.judges import make_judge

    try:
        specs = requested_specs(args)
        benchmarks = [load_benchmark(spec) for spec in specs]
        judge_spec = judge_spec_from_args(args)
        judge = make_judge(judge_spec)
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

    metadata, training = judge_provenance(judge, judge_spec)
    ranks = launched_ranks()  # accelerate launch: every rank scores a slice, rank 0 writes (eval/parallel.py)
    for spec, benchmark in zip(specs, benchmarks, strict=True):  # each benchmark loaded once, above
        cell_judge = judge
        if ranks is not None:
            gathered = score_slice(judge, cell_examples(judge, spec, benchmark)[1], cache_dir, ranks)
            if gathered is None:
                continue
            cell_judge = GatheredJudge(judge, gathered)
        if not counts_for(spec.name, spec.task, training):
            print(f"note: {spec.key}: this judge was trained on {spec.name} ({training['task']}); the leaderboard "
                  "does not rank it there (held out, as in the grid)", file=sys.stderr)
        path = out if single else out / "cells" / f"{spec.key}.json"
        result = evaluate(cell_judge, spec, cache_dir, n_bootstrap=args.n_bootstrap, samples=samples_path(path),
                          judge_metadata=metadata, training=training, benchmark=benchmark)
        write_result(path, result)
        print(format_cell_line(result, path))
        if result["format_mismatch"]:
            print(f"warning: {spec.key}: format mismatch: the judge does not answer with a verdict first (label mass "
                  f"{result['label_mass']}, {result['unparseable']} unparseable); its verdicts here are not its "
                  "answers. Score it with --mode generative, or train it on the judge format.", file=sys.stderr)
    finish(ranks)
    return 0


def judge_provenance(judge, judge_spec: JudgeSpec) -> tuple[dict, dict]:
    """(adapter metadata, training block) of a judge: what it was trained on, from its adapter's
    ``judge_metadata.json``, exactly as the grid records it (`eval.provenance`)."""
    from modelcalls.judge_metadata import find_adapter_metadata

    metadata = getattr(getattr(judge, "loaded", None), "adapter_metadata", None) or {}
    found = find_adapter_metadata(judge_spec.adapter) if judge_spec.adapter else None
    training = training_record(metadata, kind=judge_spec.kind, base_model=judge_spec.base_model or judge_spec.model,
                               judge_dir=str(found.parent) if found else None)
    return metadata, training


if __name__ == "__main__":
    sys.exit(main())
