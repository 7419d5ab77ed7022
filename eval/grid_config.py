"""The grid file: a typed config (`GridSpec`) read by `load_grid` into a `Grid` (datasets x base models x
benchmarks, the existing ``judges`` scored beside the trained ones, the sanity judges scored as reference rows)
and the `Run`s it trains. Nothing here trains or scores: `eval.grid` does. A bad key or value is one line naming
the file and the key (`GridError`). The grid YAML format is documented in docs/eval.md ("The grid").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, field_validator, model_validator

from eval.judges.sanity import STANDARD as SANITY_STANDARD
from eval.judges.spec import JudgeOptions, JudgeSpec
from eval.provenance import ZERO_SHOT
from eval.spec import BenchmarkSpec, load_suite
from typed_config import ConfigError, StrictModel, load_yaml, parse_config

# reference rows of every grid: the sanity judges and the keyword baselines a real judge must beat
REFERENCE_STANDARD = (*SANITY_STANDARD, "python:eval.judges.rules:harmful_keywords",
                      "python:eval.judges.rules:refusal_phrases")


class GridError(ConfigError):
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
    judge: GridJudgeOptions
    judges: list[ExistingJudge] = field(default_factory=list)
    n_bootstrap: int = 1000
    seed: int = 0
    path: Path | None = None
    sanity_judges: list[str] = field(default_factory=lambda: list(REFERENCE_STANDARD))  # reference rows


@dataclass(frozen=True)
class Run:
    """One judge to obtain: a dataset at one train fraction on one base model."""

    dataset: TrainingDataset
    fraction: float
    model: BaseModel

    @property
    def id(self) -> str:
        if self.dataset.zero_shot:
            return slug(f"{ZERO_SHOT}__{self.model.name}")
        return slug(f"{self.dataset.name}__{self.model.name}__f{self.fraction:g}")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@=-]+", "-", text)


class DatasetSpec(StrictModel):
    name: str
    sources: list[dict[str, Any]] = Field(default_factory=list)
    train_fractions: list[float] = Field(default_factory=lambda: [1.0], min_length=1)
    task: Literal["query", "response"] = "query"
    zero_shot: bool = False

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from judging.sources import SOURCES

        for index, source in enumerate(sources):
            if not isinstance(source.get("name"), str):
                raise ValueError(f"sources[{index}] needs a 'name' (a registered source)")
            if source["name"] not in SOURCES:
                raise ValueError(f"sources[{index}]: unknown source {source['name']!r}; known: {', '.join(sorted(SOURCES))}")
        return sources

    @field_validator("train_fractions")
    @classmethod
    def _fractions(cls, fractions: list[float]) -> list[float]:
        if not all(0 < fraction <= 1 for fraction in fractions):
            raise ValueError(f"train fractions must be in (0, 1], got {fractions}")
        return fractions

    @model_validator(mode="after")
    def _sources_or_zero_shot(self) -> DatasetSpec:
        if not self.zero_shot and not self.sources:
            raise ValueError("give 'sources' (recipe data.sources entries) or 'zero_shot: true'")
        return self


class ModelSpec(StrictModel):
    name: str | None = None
    recipe: str
    overrides: dict[str, Any] = Field(default_factory=dict)


class GridJudgeOptions(JudgeOptions):
    """`JudgeOptions` for every trained and zero-shot row, and ``zero_shot_mode`` for the zero-shot rows."""

    zero_shot_mode: Literal["fast", "generative"] | None = None


class ExistingJudge(JudgeSpec):
    """A judge the grid scores but does not train (a ``judges:`` entry): a `JudgeSpec` with the row's
    ``name``, the ``task`` it judges (default: the task its adapter was trained for, else query) and
    ``trained_on``: source names it was trained on that no metadata records (held out like any other's)."""

    name: str
    task: Literal["query", "response"] | None = None
    trained_on: list[str] = Field(default_factory=list)

    @property
    def judge_spec(self) -> JudgeSpec:
        return JudgeSpec(**self.model_dump(exclude={"name", "task", "trained_on"}))

    @property
    def row_id(self) -> str:
        return slug(f"judge__{self.name}")

    @property
    def identity(self) -> dict[str, Any]:
        """What decides this row's verdicts (not batch size or the key's variable): recorded in its cells, so a
        rerun with another judge under the same name is refused instead of reusing the old judge's cells."""
        return self.judge_spec.model_dump(exclude={"batch_size", "api_key_env"}, exclude_none=True)


class GridSpec(StrictModel):
    """A grid YAML (docs/eval.md, "The grid"): the judges it trains (datasets x models) and/or the existing
    ``judges`` it scores, on the benchmarks, plus the sanity judges scored on every benchmark as reference rows
    (default: the four sanity kinds and the keyword baselines; ``[]`` for none)."""

    name: str | None = None
    datasets: list[DatasetSpec] = Field(default_factory=list)
    models: list[ModelSpec] = Field(default_factory=list)
    benchmarks: list[BenchmarkSpec] | None = Field(default=None, min_length=1)
    suite: str | None = None
    judge: GridJudgeOptions = Field(default_factory=GridJudgeOptions)
    judges: list[ExistingJudge] = Field(default_factory=list)
    n_bootstrap: NonNegativeInt = 1000
    seed: int = 0
    sanity_judges: list[str] = Field(default_factory=lambda: list(REFERENCE_STANDARD))
    modality_gain: bool = True  # also score every multimodal cell with the image withheld

    @field_validator("sanity_judges")
    @classmethod
    def _sanity_kinds(cls, kinds: list[str]) -> list[str]:
        from eval.judges import make_judge

        for kind in kinds:
            make_judge({"kind": kind})  # ValueError naming the kind and the forms allowed
        return kinds

    @model_validator(mode="after")
    def _judges_to_train_or_score(self) -> GridSpec:
        if bool(self.datasets) != bool(self.models):
            given, missing = ("datasets", "models") if self.datasets else ("models", "datasets")
            raise ValueError(f"'{given}' needs '{missing}': the grid trains every dataset on every model")
        if not self.datasets and not self.judges:
            raise ValueError("give 'datasets' and 'models' (judges to train) and/or 'judges' (existing judges to score)")
        return self

    @model_validator(mode="after")
    def _benchmarks_or_suite(self) -> GridSpec:
        if (self.benchmarks is None) == (self.suite is None):
            raise ValueError("give either 'benchmarks' (a list of suite entries) or 'suite: <benchmarks.yaml>'")
        return self


def _resolve_recipe(recipe: str, grid_path: Path, where: str) -> str:
    path = Path(recipe)
    if not path.is_absolute():
        candidates = [Path.cwd() / path, grid_path.parent / path, Path(__file__).resolve().parents[1] / path]
        path = next((c for c in candidates if c.is_file()), candidates[0])
    if not path.is_file():
        raise GridError(f"{where}: recipe {recipe!r} not found (looked relative to the working directory, the "
                        "grid file and the repository)")
    return str(path)


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid YAML (`GridSpec`): every key, source name, task and recipe path, before anything is
    loaded. Errors are one line per problem naming the file and the key (`GridError`, exit 2)."""
    path = Path(path)
    try:
        data = load_yaml(path, what="grid file")
        if isinstance(data, dict) and isinstance(data.get("benchmarks"), list):
            data = {**data, "benchmarks": [{"name": e} if isinstance(e, str) else e for e in data["benchmarks"]]}
        spec = parse_config(GridSpec, data, source=str(path))
        benchmarks = (list(spec.benchmarks) if spec.benchmarks is not None else
                      load_suite(Path(spec.suite) if Path(spec.suite).is_absolute() else path.parent / spec.suite))
    except ConfigError as error:
        raise GridError(str(error)) from None
    datasets = [TrainingDataset(d.name, list(d.sources), list(d.train_fractions), d.task, d.zero_shot)
                for d in spec.datasets]
    models = []
    for index, model in enumerate(spec.models):
        recipe = _resolve_recipe(model.recipe, path, f"{path}: models.{index}.recipe")
        models.append(BaseModel(model.name or Path(recipe).parent.name, recipe, dict(model.overrides)))
    if spec.modality_gain:  # the image withheld: the leaderboard shows full minus text-only per cell
        keys = {benchmark.key for benchmark in benchmarks}
        benchmarks += [twin for benchmark in list(benchmarks) if not benchmark.text_only
                       and (twin := benchmark.model_copy(update={"text_only": True})).key not in keys]
    names = [judge.name for judge in spec.judges]
    if len(set(names)) != len(names):
        raise GridError(f"{path}: judges: every judge needs its own name (given: {', '.join(names)})")
    return Grid(spec.name or path.stem, datasets, models, benchmarks, spec.judge, list(spec.judges), spec.n_bootstrap,
                spec.seed, path, list(spec.sanity_judges))


def runs(grid: Grid) -> list[Run]:
    found = []
    for dataset in grid.datasets:
        for model in grid.models:
            for fraction in [1.0] if dataset.zero_shot else dataset.train_fractions:
                found.append(Run(dataset, fraction, model))
    return found
