"""The dataset-evaluation grid: training datasets x base models (recipes) x benchmarks.

`python -m eval.grid GRID.yaml --out RESULTS_DIR`

For every (dataset, train_fraction, model) the grid trains a judge with `recipes.train.train` (the model's
recipe, with the dataset's sources and fraction as overrides), then scores it on every benchmark of the
judge's task except the dataset's own training sources (held-out evaluation), writing one result JSON per
cell. Finished cells (a readable result file) are skipped on rerun; finished judges are not retrained; a
half-trained judge resumes from its last checkpoint; predictions resume from the prediction cache.

Layout of RESULTS_DIR: ``grid.yaml`` (the config used), ``judges/<run>/`` (adapter + judge_metadata.json),
``predictions/`` (per-item cache), ``cells/<run>__<benchmark key>.json`` (results; the key carries task,
split, options, limit and text-only, `eval.score.BenchmarkSpec.key`), then
`python -m eval.leaderboard RESULTS_DIR`. The grid YAML format is documented in docs/eval.md.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eval.score import BenchmarkSpec, MissingImagesError, ResultSchemaError, evaluate, read_result, write_result

log = logging.getLogger("eval.grid")
GRID_KEYS = {"name", "datasets", "models", "benchmarks", "suite", "judge", "n_bootstrap", "seed"}
ZERO_SHOT = "zero-shot"


class GridError(ValueError):
    pass


@dataclass(frozen=True)
class TrainingDataset:
    """A training dataset: recipe ``data.sources`` entries, and the train fractions to run (scale experiment).
    ``zero_shot: true`` instead gives the untrained base model as a baseline row."""

    name: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    train_fractions: list[float] = field(default_factory=lambda: [1.0])
    task: str = "query"
    zero_shot: bool = False

    @property
    def source_names(self) -> set[str]:
        return {source["name"] for source in self.sources}


@dataclass(frozen=True)
class BaseModel:
    name: str
    recipe: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Grid:
    name: str
    datasets: list[TrainingDataset]
    models: list[BaseModel]
    benchmarks: list[BenchmarkSpec]
    judge: dict[str, Any]
    n_bootstrap: int = 1000
    seed: int = 0
    path: Path | None = None


@dataclass(frozen=True)
class Run:
    """One judge to obtain: a dataset at one train fraction on one base model."""

    dataset: TrainingDataset
    fraction: float
    model: BaseModel

    @property
    def id(self) -> str:
        if self.dataset.zero_shot:
            return _slug(f"{ZERO_SHOT}__{self.model.name}")
        return _slug(f"{self.dataset.name}__{self.model.name}__f{self.fraction:g}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@=-]+", "-", text)


def _require(mapping: Any, key: str, where: str, kind: type | tuple = str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise GridError(f"{where}: missing key {key!r}")
    if not isinstance(mapping[key], kind):
        raise GridError(f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}, got {mapping[key]!r}")
    return mapping[key]


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid YAML: every key, source name, task and recipe path, before anything is loaded."""
    from judging.sources import SOURCES

    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise GridError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise GridError(f"{path}: expected a mapping with datasets, models, benchmarks")
    unknown = set(data) - GRID_KEYS
    if unknown:
        raise GridError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(GRID_KEYS)}")

    datasets = []
    for index, entry in enumerate(_require(data, "datasets", str(path), list)):
        where = f"{path}: datasets[{index}]"
        name = _require(entry, "name", where)
        zero_shot = bool(entry.get("zero_shot", False))
        sources = entry.get("sources", [])
        if not zero_shot and not sources:
            raise GridError(f"{where}: give 'sources' (recipe data.sources entries) or 'zero_shot: true'")
        for s_index, source in enumerate(sources):
            source_name = _require(source, "name", f"{where}.sources[{s_index}]")
            if source_name not in SOURCES:
                raise GridError(f"{where}.sources[{s_index}]: unknown source {source_name!r}; known: "
                                f"{', '.join(sorted(SOURCES))}")
        fractions = entry.get("train_fractions", [1.0])
        if not isinstance(fractions, list) or not all(isinstance(f, (int, float)) and 0 < f <= 1 for f in fractions):
            raise GridError(f"{where}: train_fractions must be a list of numbers in (0, 1], got {fractions!r}")
        datasets.append(TrainingDataset(name, sources, [float(f) for f in fractions], entry.get("task", "query"),
                                        zero_shot))

    models = []
    for index, entry in enumerate(_require(data, "models", str(path), list)):
        where = f"{path}: models[{index}]"
        recipe = Path(_require(entry, "recipe", where))
        if not recipe.is_absolute():
            candidates = [Path.cwd() / recipe, path.parent / recipe, Path(__file__).resolve().parents[1] / recipe]
            recipe = next((c for c in candidates if c.is_file()), candidates[0])
        if not recipe.is_file():
            raise GridError(f"{where}: recipe {entry['recipe']!r} not found (looked relative to the working "
                            "directory, the grid file and the repository)")
        models.append(BaseModel(entry.get("name", recipe.parent.name), str(recipe), dict(entry.get("overrides", {}))))

    entries = data.get("benchmarks")
    if entries is None and "suite" in data:
        from eval.benchmarks import load_suite

        entries = load_suite(path.parent / data["suite"] if not Path(data["suite"]).is_absolute() else data["suite"])
    if not isinstance(entries, list) or not entries:
        raise GridError(f"{path}: give a non-empty 'benchmarks' list (or 'suite: <benchmarks.yaml>')")
    benchmarks = []
    for index, entry in enumerate(entries):
        where = f"{path}: benchmarks[{index}]"
        try:
            spec = BenchmarkSpec.from_dict(entry, where=where)
        except TypeError as error:
            raise GridError(f"{where}: {error}") from error
        if spec.name not in SOURCES:
            raise GridError(f"{where}: unknown benchmark {spec.name!r}; known sources: {', '.join(sorted(SOURCES))}")
        if spec.task not in SOURCES[spec.name].tasks:
            raise GridError(f"{where}: {spec.name} has no task {spec.task!r}")
        benchmarks.append(spec)
    judge = dict(data.get("judge") or {})
    allowed = {"mode", "zero_shot_mode", "batch_size", "max_new_tokens", "load_in_4bit"}
    if set(judge) - allowed:
        raise GridError(f"{path}: judge: unknown key(s) {sorted(set(judge) - allowed)}; allowed: {sorted(allowed)}")
    for key in ("mode", "zero_shot_mode"):
        if judge.get(key, "fast") not in ("fast", "generative"):
            raise GridError(f"{path}: judge.{key} must be 'fast' or 'generative', got {judge[key]!r}")
    return Grid(data.get("name", path.stem), datasets, models, benchmarks, judge,
                int(data.get("n_bootstrap", 1000)), int(data.get("seed", 0)), path)


def runs(grid: Grid) -> list[Run]:
    found = []
    for dataset in grid.datasets:
        for model in grid.models:
            for fraction in [1.0] if dataset.zero_shot else dataset.train_fractions:
                found.append(Run(dataset, fraction, model))
    return found


def held_out(grid: Grid, run: Run) -> list[BenchmarkSpec]:
    """Benchmarks a run's judge is scored on: same task, not one of its own training sources."""
    return [spec for spec in grid.benchmarks
            if spec.task == run.dataset.task and spec.name not in run.dataset.source_names]


def cell_path(out: Path, run: Run, spec: BenchmarkSpec) -> Path:
    return out / "cells" / f"{run.id}__{spec.key}.json"


def _finished(path: Path) -> bool:
    """A cell is finished when its result file exists and reads (another schema version is an error)."""
    if not path.exists():
        return False
    read_result(path)
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
    overrides = {**run.model.overrides, "data.sources": run.dataset.sources,
                 "data.train_fraction": run.fraction, "data.task": run.dataset.task, "output_dir": str(judge_dir)}
    log.info("%s: training (%s)", run.id, "resuming" if resume else "from scratch")
    train(run.model.recipe, overrides, resume=resume)
    return judge_dir


def judge_options(grid: Grid, run: Run) -> dict[str, Any]:
    """The HF judge options of a run. Zero-shot rows are scored generatively unless ``judge.zero_shot_mode``
    says otherwise: an untrained model writes prose first, and reading two logits would invent verdicts."""
    options = {key: value for key, value in grid.judge.items() if key != "zero_shot_mode"}
    if run.dataset.zero_shot:
        options["mode"] = grid.judge.get("zero_shot_mode", "generative")
    return options


def judge_for(grid: Grid, run: Run, judge_dir: Path | None):
    from eval.judges import make_judge

    if judge_dir is None:
        from recipes.config import load_recipe

        base = load_recipe(run.model.recipe, run.model.overrides).model.name_or_path
        return make_judge({"kind": "hf", "base_model": base, **judge_options(grid, run)})
    return make_judge({"kind": "hf", "adapter": str(judge_dir / "adapter"), **judge_options(grid, run)})


def run_grid(grid: Grid, out: Path | str) -> list[Path]:
    """Train and score every missing cell; returns the result paths of all cells (old and new)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if grid.path is not None:
        shutil.copyfile(grid.path, out / "grid.yaml")
    paths = []
    for run in runs(grid):
        specs = held_out(grid, run)
        missing = [spec for spec in specs if not _finished(cell_path(out, run, spec))]
        paths += [cell_path(out, run, spec) for spec in specs]
        if not missing:
            log.info("%s: all %d cells finished", run.id, len(specs))
            continue
        judge_dir = None if run.dataset.zero_shot else obtain_judge_dir(run, out)
        judge = judge_for(grid, run, judge_dir)
        metadata = getattr(getattr(judge, "loaded", None), "adapter_metadata", {})
        training = {"dataset": run.dataset.name, "zero_shot": run.dataset.zero_shot,
                    "train_fraction": None if run.dataset.zero_shot else run.fraction,
                    "model": run.model.name, "recipe": run.model.recipe, "run_id": run.id,
                    "judge_dir": str(judge_dir) if judge_dir else None,
                    "held_out_from": sorted(run.dataset.source_names), "grid": grid.name}
        for spec in missing:
            log.info("%s: scoring %s (%s)", run.id, spec.name, spec.task)
            result = evaluate(judge, spec, out / "predictions", judge_metadata=metadata, training=training,
                              n_bootstrap=grid.n_bootstrap, seed=grid.seed)
            write_result(cell_path(out, run, spec), result)
        del judge
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.grid", description=__doc__.splitlines()[0],
                                     epilog="See docs/eval.md for the grid YAML format and the dataset score.")
    parser.add_argument("grid", help="grid YAML (datasets x models x benchmarks), e.g. eval/configs/grid_tiny.yaml")
    parser.add_argument("--out", required=True, help="results directory (reruns skip finished cells)")
    parser.add_argument("--dry-run", action="store_true", help="check the grid and list its cells; train nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        grid = load_grid(args.grid)
        if args.dry_run:
            for run in runs(grid):
                for spec in held_out(grid, run):
                    state = "done" if _finished(cell_path(Path(args.out), run, spec)) else "todo"
                    print(f"{state}  {run.id}  {spec.key}")
            return 0
        paths = run_grid(grid, args.out)
    except (GridError, ResultSchemaError, MissingImagesError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(paths)} cells in {args.out}/cells; next: python -m eval.leaderboard {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
