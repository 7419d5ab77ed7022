"""The run config (`generation/configs/*.yaml`): one typed record, read from YAML with clear errors.

Each role names its own backend and model: `generator` (screen, scene, risks, query, responses) and
`verifier` (the complementarity checks and the response-label checks; ideally a different model). Relative
paths (input, exemplars) are resolved against the current directory, then against the repository root.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from .ingest import IngestOptions

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunConfig:
    generator: dict[str, Any]
    verifier: dict[str, Any]
    input: dict[str, Any]
    name: str = "rms"
    max_images: int | None = None  # consider only the first N input files (input order), before sharding
    seed: int = 0
    proposals_per_image: int = 3  # risks asked for per image
    risks_per_image: int = 1  # risks kept per image (chosen by the coverage sampler)
    category_cap: int | None = None  # sampler avoids a category at this many risks; the release caps pairs too
    max_rewrites: int = 2  # extra query attempts after a failed verification
    check_responses: bool = True  # the verifier checks each response carries its label (off only for demos)
    # Relative complementarity verdicts from the verifier's log-odds log P(unsafe) - log P(safe) instead of
    # generated text: the pair must score at least this margin above the text alone, the image alone and the
    # safe twin. Needs the transformers backend; meant for small verifiers whose generations are all "safe".
    verdict_margin: float | None = None
    exemplars: str | None = "sample/curated_pairs.jsonl"
    num_exemplars: int = 2
    dedup_threshold: float = 0.7
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "test": 0.2})
    concurrency: int = 8
    risk_chunk: int = 8  # images per risk-discovery round (the sampler's counts update between rounds)
    ingest: dict[str, Any] = field(default_factory=dict)
    max_tokens: dict[str, int] = field(default_factory=dict)  # per prompt name, overrides the template's default
    cache: str | None = None  # SQLite call cache; default <out>/calls.sqlite (shards may share one file)
    pretty_name: str = "RMS"
    version: str = "0.0.0"

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: run config not found (see generation/configs/ for examples)")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML: {error}") from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
        missing = [key for key in ("generator", "verifier", "input") if key not in data]
        if missing:
            raise ValueError(f"{where}: missing key(s) {missing}")
        for role in ("generator", "verifier"):
            if not isinstance(data[role], dict) or "backend" not in data[role] or "model" not in data[role]:
                raise ValueError(f"{where}: '{role}' must be a mapping with 'backend' and 'model'")
        if not isinstance(data["input"], dict) or not ("path" in data["input"] or "dataset" in data["input"]):
            raise ValueError(f"{where}: 'input' must be a mapping with 'kind' and 'path'")
        config = cls(**data)
        config.ingest_options()  # validate keys early
        if config.max_rewrites < 0 or config.risks_per_image < 1 or config.proposals_per_image < config.risks_per_image:
            raise ValueError(f"{where}: need max_rewrites >= 0 and 1 <= risks_per_image <= proposals_per_image")
        return config

    def ingest_options(self) -> IngestOptions:
        known = {f.name for f in fields(IngestOptions)}
        unknown = sorted(set(self.ingest) - known)
        if unknown:
            raise ValueError(f"ingest: unknown key(s) {unknown}; allowed: {sorted(known)}")
        return IngestOptions(**self.ingest)

    def resolved_input(self) -> dict[str, Any]:
        spec = dict(self.input)
        if "path" in spec and (spec.get("kind", "folder") != "dataset" or Path(spec["path"]).exists()):
            spec["path"] = str(resolve_path(spec["path"]))
        return spec

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON-safe); an in-memory input Dataset is recorded by its fingerprint."""
        dataset = self.input.get("dataset")
        if dataset is None or isinstance(dataset, str):
            return asdict(self)
        described = f"in-memory Dataset ({len(dataset)} rows, fingerprint {getattr(dataset, '_fingerprint', '?')})"
        return asdict(replace(self, input={**self.input, "dataset": described}))


def resolve_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    candidate = REPO_ROOT / path
    return candidate if candidate.exists() else path
