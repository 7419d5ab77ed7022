"""The run config (`generation/configs/*.yaml`): typed models validated through `typed_config`, so a bad
value is one line naming the key and what is allowed (the CLI exits 2), never a traceback or a silently
wrong run.

Each role names its own backend and model: `generator` (screen, scene, risks, query, responses) and
`verifier` (the complementarity checks and the response-label checks; ideally a different model). The role
block is typed per backend (`backend: openai | transformers | scripted`), with that backend's keys.
Relative paths (input, exemplars) are resolved against the current directory, then the repository root.

Two levels of checking:
* `RunConfig.from_yaml` / `from_dict`: the values themselves (types, ranges, known keys, splits summing to 1).
* `check_run(config, out, base_release)`: what depends on this machine, run by the CLI before any model is
  loaded: the input folder and its manifest exist, an `api_key_env` is set, the cache file is SQLite,
  `--out` is not a file, `--base-release` exists.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (Discriminator, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Tag,
                      field_validator, model_validator)

from generation.steps.gates import GateConfig
from generation.steps.ingest import MAX_FILE_MB, IngestOptions, read_manifest
from modelcalls.redact import redact
from typed_config import ConfigError, StrictModel, load_yaml, parse_config

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMPT_DIR = REPO_ROOT / "generation" / "prompts"
SQLITE_MAGIC = b"SQLite format 3\x00"
NonEmptyStr = Annotated[str, Field(min_length=1)]


# ------------------------------------------------------------------------------------------------ roles


class _Role(StrictModel):
    """Keys every backend takes. Knobs left out (None) take the backend's own default."""

    model: NonEmptyStr
    supports_images: bool | None = None
    max_concurrency: PositiveInt | None = None

    def backend_spec(self) -> dict[str, Any]:
        """The mapping `modelcalls.make_backend` takes: the keys that were given."""
        return self.model_dump(exclude_none=True)


HttpUrl = Annotated[str, Field(pattern=r"^https?://\S+$")]


class OpenAIRole(_Role):
    backend: Literal["openai"]

    @model_validator(mode="before")
    @classmethod
    def _no_revision(cls, data: Any) -> Any:
        if isinstance(data, dict) and "revision" in data:
            raise ValueError("revision: a client cannot pin what an OpenAI-compatible server serves; serve the "
                             "revision under its own name (e.g. vllm serve ORG/MODEL --revision REV "
                             "--served-model-name ORG/MODEL@REV) and put that name in 'model'")
        return data

    base_url: HttpUrl | Annotated[list[HttpUrl], Field(min_length=1)] | None = None  # several: replicas

    @field_validator("base_url", mode="before")
    @classmethod
    def _urls_have_a_scheme(cls, value: Any) -> Any:
        """One line for a URL without its scheme (``127.0.0.1:8000/v1``), not the pattern of each member of
        the union."""
        for url in value if isinstance(value, list) else [value]:
            if isinstance(url, str) and not re.fullmatch(r"https?://\S+", url):
                fix = f"; write http://{url}" if "://" not in url and url.strip() else ""
                raise ValueError(f"{url!r} is not an http:// or https:// URL{fix}")
        return value

    api_key_env: NonEmptyStr | None = None  # the NAME of the environment variable holding the key
    headers: dict[str, str] | None = Field(default=None, repr=False)  # values are redacted wherever written
    timeout_s: PositiveFloat | None = None
    max_retries: NonNegativeInt | None = None
    retry_base_delay_s: NonNegativeFloat | None = None
    retry_max_delay_s: NonNegativeFloat | None = None
    structured_output: bool | None = None
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None
    extra_body: dict[str, Any] | None = Field(default=None, repr=False)
    eject_after: PositiveInt | None = None  # failures in a row before a replica is set aside
    eject_for_s: NonNegativeFloat | None = None


class TransformersRole(_Role):
    backend: Literal["transformers"]
    revision: NonEmptyStr | None = None  # a Hub branch, tag or commit; the commit loaded is recorded
    batch_size: PositiveInt | None = None
    device: NonEmptyStr | None = None
    dtype: NonEmptyStr | None = None
    trust_remote_code: bool | None = None


class ScriptedRole(_Role):
    """Canned answers for tests and benchmarks: ``replies: [...]`` or ``respond: "module:function"``."""

    backend: Literal["scripted"]
    model: NonEmptyStr = "scripted"
    replies: list[Any] | None = None
    respond: Annotated[str, Field(pattern=r"^[\w.]+:\w+$")] | None = None
    max_retries: NonNegativeInt | None = None
    delay_s: NonNegativeFloat | None = None

    @model_validator(mode="after")
    def _one_source_of_answers(self) -> ScriptedRole:
        if (self.replies is None) == (self.respond is None):
            raise ValueError("a scripted role needs exactly one of replies: [...] or respond: 'module:function'")
        return self


ROLE_KINDS = ("openai", "transformers", "scripted")


def _tag(key: str, default: str | None = None):
    def tag_of(value: Any) -> str | None:
        return value.get(key, default) if isinstance(value, dict) else getattr(value, key, default)

    return tag_of


Role = Annotated[
    Union[Annotated[OpenAIRole, Tag("openai")], Annotated[TransformersRole, Tag("transformers")],
          Annotated[ScriptedRole, Tag("scripted")]],
    Discriminator(_tag("backend"), custom_error_type="backend_kind",
                  custom_error_message=f"'backend' must be one of: {', '.join(ROLE_KINDS)}"),
]


# ------------------------------------------------------------------------------------------------ input


class FolderInput(StrictModel):
    kind: Literal["folder"] = "folder"
    path: NonEmptyStr
    manifest: NonEmptyStr = "MANIFEST.csv"  # inside the folder: file, source, license, ...


class ManifestInput(StrictModel):
    kind: Literal["manifest"]
    path: NonEmptyStr  # a .csv or .jsonl; image paths are relative to it and must stay inside its folder


class DatasetInput(StrictModel):
    kind: Literal["dataset"]
    path: NonEmptyStr = "dataset"  # a Hub id or a local `save_to_disk` directory
    dataset: Any = Field(default=None, repr=False)  # an in-memory datasets.Dataset (from Python only)
    revision: str | None = None
    split: NonEmptyStr = "train"
    image_column: NonEmptyStr = "image"
    source: str | None = None
    license: str | None = None
    source_column: str | None = None
    license_column: str | None = None
    description_column: str | None = None
    attribution_column: str | None = None


INPUT_KINDS = ("folder", "manifest", "dataset")
Input = Annotated[
    Union[Annotated[FolderInput, Tag("folder")], Annotated[ManifestInput, Tag("manifest")],
          Annotated[DatasetInput, Tag("dataset")]],
    Discriminator(_tag("kind", "folder"), custom_error_type="input_kind",
                  custom_error_message=f"'kind' must be one of: {', '.join(INPUT_KINDS)}"),
]


# ---------------------------------------------------------------------------------------------- the run


class IngestConfig(StrictModel):
    max_side: PositiveInt = IngestOptions.max_side
    min_side: PositiveInt = IngestOptions.min_side
    max_pixels: PositiveInt = IngestOptions.max_pixels
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = IngestOptions.jpeg_quality
    near_duplicate_distance: Annotated[int, Field(ge=0, le=64)] = IngestOptions.near_duplicate_distance
    # input files over this many MB are rejected unread; not an IngestOptions field (it decides only whether
    # a file is read, and that outcome enters each input's checkpoint key)
    max_file_mb: PositiveInt = MAX_FILE_MB

    @model_validator(mode="after")
    def _sides_agree(self) -> IngestConfig:
        if self.max_side < self.min_side:
            raise ValueError(f"max_side ({self.max_side}) is below min_side ({self.min_side}): photos would be shrunk "
                             "below the smallest size ingest keeps; raise max_side or lower min_side")
        if self.max_pixels < self.min_side ** 2:
            raise ValueError(f"max_pixels ({self.max_pixels}) is below min_side² ({self.min_side ** 2}): every photo "
                             "large enough to keep would be refused as too many pixels; raise max_pixels or lower min_side")
        return self


def prompt_names() -> list[str]:
    return sorted(path.stem for path in PROMPT_DIR.glob("*.yaml"))


class RunConfig(StrictModel):
    generator: Role
    verifier: Role
    input: Input
    name: NonEmptyStr = "rms"
    max_images: PositiveInt | None = None  # consider only the first N input files (input order), before sharding
    seed: int = 0
    proposals_per_image: PositiveInt = 3  # risks asked for per image
    risks_per_image: PositiveInt = 1  # risks kept per image (chosen by the coverage sampler)
    category_cap: PositiveInt | None = None  # sampler avoids a category at this many risks; the release caps pairs too
    max_rewrites: NonNegativeInt = 2  # extra query attempts after a failed verification
    check_responses: bool = True  # the verifier checks each response carries its label (off only for demos)
    # Relative complementarity verdicts from the verifier's log-odds log P(unsafe) - log P(safe) instead of
    # generated text: the pair must score at least this margin above the text alone, the image alone and the
    # safe twin. Needs the transformers backend; meant for small verifiers whose generations are all "safe".
    verdict_margin: float | None = None
    exemplars: NonEmptyStr | None = "sample/curated_pairs.jsonl"
    num_exemplars: NonNegativeInt = 2
    dedup_threshold: Annotated[float, Field(gt=0, le=1)] = 0.7  # query similarity at which a pair is a duplicate
    splits: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=lambda: {"train": 0.8, "test": 0.2})
    concurrency: PositiveInt = 8
    risk_chunk: PositiveInt = 8  # images per risk-discovery round (the sampler's counts update between rounds)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    max_tokens: dict[str, PositiveInt] = Field(default_factory=dict)  # per prompt name, overrides the template's default
    cache: NonEmptyStr | None = None  # SQLite call cache; default <out>/calls.sqlite (shards may share one file)
    gates: GateConfig = Field(default_factory=GateConfig)  # quality gates on every generated text (steps/gates.py)
    pretty_name: NonEmptyStr = "RMS"
    version: NonEmptyStr = "0.0.0"

    @field_validator("max_tokens")
    @classmethod
    def _known_prompts(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(prompt_names()))
        if unknown:
            raise ValueError(f"unknown prompt name(s) {', '.join(unknown)}; allowed: {', '.join(prompt_names())}")
        return value

    @field_validator("splits")
    @classmethod
    def _splits_sum_to_one(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("give at least one split, e.g. {train: 0.8, test: 0.2}")
        bad = [name for name in value if not re.fullmatch(r"[A-Za-z0-9_]+", name)]
        if bad:
            raise ValueError(f"split names may use letters, digits and _ only, got {bad}")
        if not math.isclose(sum(value.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"the fractions must sum to 1, got {sum(value.values()):g}")
        return value

    @model_validator(mode="after")
    def _risks_within_proposals(self) -> RunConfig:
        if self.risks_per_image > self.proposals_per_image:
            raise ValueError(f"risks_per_image ({self.risks_per_image}) cannot exceed proposals_per_image "
                             f"({self.proposals_per_image}): the kept risks are chosen among the proposed ones")
        return self

    # ------------------------------------------------------------------------------------------ reading

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        data = load_yaml(path, what="run config")
        return cls.from_dict(data if data is not None else {}, where=str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> RunConfig:
        return parse_config(cls, data, source=where)

    def with_overrides(self, source: str = "command line", **values: Any) -> RunConfig:
        """A copy with `values` replaced, validated like the file (e.g. `--max-images 0` is refused)."""
        return parse_config(RunConfig, {**self._plain(), **values}, source=source)

    # ------------------------------------------------------------------------------------------ using

    def ingest_options(self) -> IngestOptions:
        return IngestOptions(**self.ingest.model_dump(exclude={"max_file_mb"}))

    def resolved_input(self) -> dict[str, Any]:
        spec = self.input.model_dump()
        if spec["kind"] != "dataset" or Path(spec["path"]).exists():
            spec["path"] = str(resolve_path(spec["path"]))
        return spec

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON-safe) for writing: summaries, pipeline_config.yaml. Secrets are redacted
        (`modelcalls.redact`); an in-memory input Dataset is recorded by its fingerprint."""
        return redact(self._plain())

    def _plain(self) -> dict[str, Any]:
        data = self.model_dump()
        dataset = data["input"].get("dataset")
        if dataset is not None and not isinstance(dataset, str):
            data["input"]["dataset"] = (f"in-memory Dataset ({len(dataset)} rows, "
                                        f"fingerprint {getattr(dataset, '_fingerprint', '?')})")
        return data


def resolve_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    candidate = REPO_ROOT / path
    return candidate if candidate.exists() else path


# ------------------------------------------------------------------------------------- machine checks


def check_run(config: RunConfig, out: str | Path, *, base_release: str | None = None, source: str = "config") -> None:
    """Everything about this run that depends on the machine, checked before any model is loaded; a
    `ConfigError` with one line per problem otherwise."""
    problems = [*_input_problems(config), *_role_problems(config), *_out_problems(config, Path(out)),
                *_base_release_problems(base_release)]
    if config.exemplars and not resolve_path(config.exemplars).is_file():
        problems.append(f"exemplars: {config.exemplars} not found; give an existing JSONL of curated pairs or exemplars: null")
    if problems:
        raise ConfigError("\n".join(problem if problem.startswith("--") else f"{source}: {problem}" for problem in problems))


def _input_problems(config: RunConfig) -> list[str]:
    spec = config.input
    if isinstance(spec, DatasetInput):
        if spec.dataset is None and _looks_like_a_path(spec.path) and not resolve_path(spec.path).is_dir():
            return [f"input.path: {spec.path} is not a dataset directory (give a `save_to_disk` folder or a Hub id)"]
        return []
    path = resolve_path(spec.path)
    if isinstance(spec, ManifestInput):
        if not path.is_file():
            return [f"input.path: manifest {spec.path} not found (a CSV or JSONL with file, source, license)"]
        manifest = path
    elif not path.is_dir():
        return [f"input.path: {spec.path} is not a folder" + (" (it is a file; use kind: manifest for a manifest)" if path.is_file() else "")]
    else:
        manifest = path / spec.manifest
        if not manifest.is_file():
            return [f"input.manifest: {manifest} not found; every image needs source and license provenance "
                    "(columns file, source, license; see docs/generation.md)"]
    try:
        read_manifest(manifest)
    except ValueError as error:  # not UTF-8, no file column, a bad JSONL line: named with file and line
        return [f"input: {error}"]
    return []


def _role_problems(config: RunConfig) -> list[str]:
    problems = []
    for role_name in ("generator", "verifier"):
        role = getattr(config, role_name)
        if isinstance(role, OpenAIRole) and role.api_key_env and not os.environ.get(role.api_key_env):
            problems.append(f"{role_name}.api_key_env: ${role.api_key_env} is not set; export it (or drop api_key_env "
                            "for a local server that needs no key)")
        if isinstance(role, TransformersRole) and _looks_like_a_path(role.model) and not resolve_path(role.model).exists():
            problems.append(f"{role_name}.model: {role.model} does not exist (give a checkpoint directory, a Hub id or smollm2)")
    return problems


def _out_problems(config: RunConfig, out: Path) -> list[str]:
    problems = []
    if out.exists() and not out.is_dir():
        problems.append(f"--out {out}: is a file; give a directory (created if missing)")
    cache = Path(config.cache) if config.cache else out / "calls.sqlite"
    if cache.is_dir():
        problems.append(f"cache: {cache} is a directory; give a file path for the SQLite call cache")
    elif cache.is_file() and cache.stat().st_size > 0:
        with open(cache, "rb") as handle:
            if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                problems.append(f"cache: {cache} is not an SQLite database; point cache at a new file or at a "
                                "calls.sqlite written by an earlier run")
    return problems


def check_base_release(base_release: str | None) -> None:
    """A `ConfigError` unless `base_release` is None, a directory or a Hub dataset id (owner/name)."""
    problems = _base_release_problems(base_release)
    if problems:
        raise ConfigError("\n".join(problems))


def _base_release_problems(base_release: str | None) -> list[str]:
    if not base_release or Path(base_release).is_dir():
        return []
    if Path(base_release).exists():
        return [f"--base-release {base_release}: is a file; give a release directory or a Hub dataset id (owner/name)"]
    if _looks_like_a_path(base_release) or not re.fullmatch(r"[\w.-]+/[\w.-]+", base_release):
        return [f"--base-release {base_release}: no such directory (and not a Hub dataset id owner/name)"]
    return []


def _looks_like_a_path(text: str) -> bool:
    """A local path rather than a Hub id: absolute, relative with ./ or ../, more than one /, or its first
    component exists here."""
    first = text.split("/")[0]
    return (text.startswith(("/", "./", "../", "~")) or text.count("/") > 1
            or ("/" in text and Path(first).is_dir()))
