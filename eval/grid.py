"""The dataset-evaluation grid: training datasets x base models (recipes) x benchmarks.

`python -m eval.grid GRID.yaml --out RESULTS_DIR [--cell I/N]`  (``--cell``: job I of N, `eval.grid_jobs`)

For every (dataset, train_fraction, model) the grid trains a judge with `recipes.train.train` (the model's
recipe, with the dataset's sources and fraction as overrides), then scores it on every benchmark of the
judge's task except the dataset's own training sources (held-out evaluation), writing one result JSON per
cell. Finished cells (a readable result file) are skipped on rerun; finished judges are not retrained; a
half-trained judge resumes from its last checkpoint; predictions resume from the prediction cache. The
grid's ``judges`` (existing judges: an adapter folder or Hub id, a base model zero-shot, an API endpoint, a
guard model, a callable judge) are scored beside the trained ones, with the provenance their adapter's
metadata records and the same hold-out rule (`eval.provenance`), and its ``sanity_judges`` (default:
constant:unsafe, constant:safe, random:0, oracle:0.9:0) are scored on every benchmark as the leaderboard's
reference rows. The grid file is a typed config (`eval.grid_config.GridSpec`, read by `load_grid`): a bad key
or value is one line naming the file and the key (`GridError`; the command exits 2).

Layout of RESULTS_DIR: ``grid.yaml`` (the config used), ``judges/<run>/`` (adapter + judge_metadata.json),
``predictions/`` (per-item cache), ``cells/<run>__<benchmark key>.json`` (results; the key carries task,
split, options, limit and text-only, `eval.spec.BenchmarkSpec.key`), then
`python -m eval.leaderboard RESULTS_DIR`. The grid YAML format is documented in docs/eval.md.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.cell import evaluate
from eval.grid_config import ExistingJudge, Grid, GridError, Run, load_grid, runs, slug
from eval.grid_jobs import JobShare, parse_job_share, share_of
from eval.judges.spec import JudgeOptions, JudgeSpec
from eval.loading import MissingImagesError
from eval.provenance import counts_for, training_record
from eval.results import ResultSchemaError, read_result, write_result
from eval.samples import samples_path
from eval.spec import BenchmarkSpec

log = logging.getLogger("eval.grid")


def held_out(grid: Grid, training: dict[str, Any]) -> list[BenchmarkSpec]:
    """Benchmarks a judge with this ``training`` block is scored on (`eval.provenance.counts_for`: its task,
    none of its training sources), the rule the leaderboard applies to cells eval.score wrote."""
    return [spec for spec in grid.benchmarks if counts_for(spec.name, spec.task, training)]


def cell_path(out: Path, row_id: str, spec: BenchmarkSpec) -> Path:
    return out / "cells" / f"{row_id}__{spec.key}.json"


def _finished(path: Path, row: GridRow | None = None) -> bool:
    """A cell is finished when its result file exists and reads (another schema version is an error). The
    cell of a ``judges:`` entry must have been scored by the judge the entry now gives (`GridError` if not)."""
    if not path.exists():
        return False
    result = read_result(path)
    if row is not None and row.existing is not None:
        recorded = (result.get("training") or {}).get("judge_spec")
        if recorded is not None and recorded != row.training["judge_spec"]:  # None: written before cells recorded it
            raise GridError(f"{path}: scored by judge {recorded}, but judges entry {row.existing.name!r} now gives "
                            f"{row.training['judge_spec']}; give the new judge its own name, or delete cells/{row.id}__*")
    return True


def obtain_judge_dir(run: Run, out: Path) -> Path:
    """Train the run's judge unless it is already trained; returns the run folder (with judge_metadata.json)."""
    from recipes.metadata import METADATA_FILE
    from recipes.train import train

    judge_dir = out / "judges" / run.id
    if (judge_dir / METADATA_FILE).is_file():
        log.info("%s: judge already trained", run.id)
        return judge_dir
    resume = judge_dir.is_dir() and any(judge_dir.glob("checkpoint-*"))
    if judge_dir.is_dir() and not resume:
        shutil.rmtree(judge_dir)  # a run that died before its first checkpoint: nothing to keep
    overrides = {**run.model.overrides, "data.name": run.dataset.name, "data.sources": run.dataset.sources,
                 "data.train_fraction": run.fraction, "data.task": run.dataset.task, "training.output_dir": str(judge_dir)}
    log.info("%s: training (%s)", run.id, "resuming" if resume else "from scratch")
    train(run.model.recipe, overrides, resume=resume)
    return judge_dir


def judge_options(grid: Grid, run: Run) -> JudgeOptions:
    """The HF judge options of a run (the grid's ``judge:``). Zero-shot rows are scored generatively unless
    ``judge.zero_shot_mode`` says otherwise: an untrained model writes prose first, and reading two logits would
    invent verdicts."""
    options = JudgeOptions(**grid.judge.model_dump(exclude={"zero_shot_mode"}))
    if run.dataset.zero_shot:
        return options.model_copy(update={"mode": grid.judge.zero_shot_mode or "generative"})
    return options


def judge_spec(grid: Grid, run: Run, judge_dir: Path | None) -> JudgeSpec:
    """The run's judge: its trained adapter in ``judge_dir``, or (zero-shot, ``judge_dir`` None) its recipe's
    base model."""
    options = judge_options(grid, run).model_dump()
    if judge_dir is None:
        from recipes.config import load_recipe

        base = load_recipe(run.model.recipe, run.model.overrides).model.model_name_or_path
        return JudgeSpec(kind="hf", base_model=base, **options)
    return JudgeSpec(kind="hf", adapter=str(judge_dir / "adapter"), **options)


def judge_for(grid: Grid, run: Run, judge_dir: Path | None):
    from eval.judges import make_judge

    return make_judge(judge_spec(grid, run, judge_dir))


def reference_id(kind: str) -> str:
    return slug(f"reference__{kind.replace(':', '-')}")


def reference_cells(grid: Grid, out: Path) -> list[tuple[str, BenchmarkSpec, Path]]:
    """(sanity kind, benchmark, cell path) for every sanity judge on every benchmark of the grid."""
    from eval.judges import make_judge

    tasks = {kind: getattr(make_judge({"kind": kind}), "tasks", ("query", "response")) for kind in grid.sanity_judges}
    return [(kind, spec, out / "cells" / f"{reference_id(kind)}__{spec.key}.json")
            for kind in grid.sanity_judges for spec in grid.benchmarks if spec.task in tasks[kind]]


def score_references(grid: Grid, out: Path, kinds: list[str] | None = None) -> list[Path]:
    """The sanity judges' cells (seconds: no model, no images read): the leaderboard's reference rows
    (only those of ``kinds`` when given)."""
    from eval.judges import make_judge

    paths = []
    for kind, spec, path in reference_cells(grid, out):
        if kinds is not None and kind not in kinds:
            continue
        paths.append(path)
        if _finished(path):
            continue
        training = {"dataset": "reference", "run_id": reference_id(kind), "reference": True, "grid": grid.name}
        result = evaluate(make_judge({"kind": kind}), spec, out / "predictions", training=training,
                          n_bootstrap=grid.n_bootstrap, seed=grid.seed, samples=samples_path(path))
        write_result(path, result)
    return paths


@dataclass(frozen=True)
class GridRow:
    """One judge of the grid to score: its row id (cell file prefix), its ``training`` block before the judge
    is built (what `held_out` reads) and how to obtain the judge and the full block."""

    id: str
    training: dict[str, Any]
    run: Run | None = None  # a judge the grid trains (or a base model zero-shot)
    existing: ExistingJudge | None = None  # a judge the grid only scores


def grid_rows(grid: Grid) -> list[GridRow]:
    """Trained and zero-shot runs first, in `runs` order, then the existing judges in file order."""
    from modelcalls.judge_metadata import read_adapter_metadata

    rows = [GridRow(run.id, {"task": run.dataset.task, "held_out_from": sorted(run.dataset.source_names)}, run=run)
            for run in runs(grid)]
    for judge in grid.judges:
        metadata = read_adapter_metadata(judge.adapter) if judge.adapter else {}
        training = training_record(metadata, kind=judge.kind, base_model=judge.base_model or judge.model,
                                   name=None if metadata else judge.name)
        training["task"] = judge.task or training["task"] or "query"
        training["held_out_from"] = sorted({*training["held_out_from"], *judge.trained_on})
        training["judge_spec"] = judge.identity
        rows.append(GridRow(judge.row_id, training, existing=judge))
    return rows


def obtain_judge(grid: Grid, row: GridRow, out: Path):
    """(judge, adapter metadata, full training block) of a row: trains a run's judge when needed."""
    from eval.judges import make_judge
    from modelcalls.judge_metadata import find_adapter_metadata

    extra = {"run_id": row.id, "grid": grid.name}
    if row.existing is not None:
        judge = make_judge(row.existing.judge_spec)
        found = find_adapter_metadata(row.existing.adapter) if row.existing.adapter else None
        return judge, getattr(getattr(judge, "loaded", None), "adapter_metadata", {}), {
            **row.training, **extra, "judge_dir": str(found.parent) if found else None}
    run = row.run
    judge_dir = None if run.dataset.zero_shot else obtain_judge_dir(run, out)
    judge = judge_for(grid, run, judge_dir)
    metadata = getattr(getattr(judge, "loaded", None), "adapter_metadata", {})
    training = training_record(metadata, kind="hf", name=run.dataset.name, **extra, model=run.model.name,
                               recipe=run.model.recipe, judge_dir=str(judge_dir) if judge_dir else None)
    return judge, metadata, {**training, **row.training, "train_fraction": None if run.dataset.zero_shot else run.fraction}


def check_benchmark_images(grid: Grid) -> None:
    """Fail before any training when a benchmark a judge will be scored on lacks its images (and is not
    marked ``text_only``): the same `MissingImagesError` eval.score raises, minutes earlier."""
    from eval.loading import check_images, load_benchmark

    needed = {spec.key: spec for row in grid_rows(grid) for spec in held_out(grid, row.training) if not spec.text_only}
    for spec in needed.values():
        check_images(load_benchmark(spec))


def run_grid(grid: Grid, out: Path | str, share: JobShare | None = None) -> list[Path]:
    """Train and score every missing cell (of this job's rows with a `JobShare`, `eval.grid_jobs`); returns
    the result paths of those cells (old and new)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if grid.path is not None:
        shutil.copyfile(grid.path, out / "grid.yaml")
    check_benchmark_images(grid)
    references, rows = share_of(grid.sanity_judges, grid_rows(grid), share)
    paths = score_references(grid, out, references)
    for row in rows:
        specs = held_out(grid, row.training)
        missing = [spec for spec in specs if not _finished(cell_path(out, row.id, spec), row)]
        paths += [cell_path(out, row.id, spec) for spec in specs]
        if not missing:
            log.info("%s: all %d cells finished", row.id, len(specs))
            continue
        judge, metadata, training = obtain_judge(grid, row, out)
        for spec in missing:
            log.info("%s: scoring %s (%s)", row.id, spec.name, spec.task)
            path = cell_path(out, row.id, spec)
            result = evaluate(judge, spec, out / "predictions", judge_metadata=metadata, training=training,
                              n_bootstrap=grid.n_bootstrap, seed=grid.seed, samples=samples_path(path))
            write_result(path, result)
        del judge
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.grid", description=__doc__.splitlines()[0],
                                     epilog="See docs/eval.md for the grid YAML format and the dataset score.")
    parser.add_argument("grid", help="grid YAML (datasets x models x benchmarks), e.g. eval/configs/grid_tiny.yaml")
    parser.add_argument("--out", required=True, help="results directory (reruns skip finished cells)")
    parser.add_argument("--dry-run", action="store_true", help="check the grid and list its cells; train nothing")
    parser.add_argument("--cell", type=parse_job_share, metavar="I/N",
                        help="run only job I of N: the rows (judges, with all their cells) numbered k with "
                             "k %% N == I; N jobs into one --out merge into one leaderboard (docs/eval.md)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        grid = load_grid(args.grid)
        if args.dry_run:
            references, rows = share_of(grid.sanity_judges, grid_rows(grid), args.cell)
            for row in rows:
                for spec in held_out(grid, row.training):
                    state = "done" if _finished(cell_path(Path(args.out), row.id, spec), row) else "todo"
                    print(f"{state}  {row.id}  {spec.key}")
            for kind, spec, path in reference_cells(grid, Path(args.out)):
                if kind not in references:
                    continue
                print(f"{'done' if _finished(path) else 'todo'}  {reference_id(kind)}  {spec.key}")
            return 0
        paths = run_grid(grid, args.out, args.cell)
    except (GridError, ResultSchemaError, MissingImagesError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    job = f" (job {args.cell})" if args.cell else ""
    print(f"{len(paths)} cells{job} in {args.out}/cells; next: python -m eval.leaderboard {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
