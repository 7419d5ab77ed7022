"""RMS: the real-world multimodal safety dataset. Schema, ids and the `datasets` builder.

This module is the single definition of the dataset's schema. Generation writes it, validation checks
against it, recipes and eval read it. A release is a directory (or Hub dataset repo) laid out as

    README.md                                   dataset card whose YAML `configs:` names the shards
    pairs/<split>-00000-of-00001.parquet        one row per image + text pair
    safe_responses/<split>-...parquet           one row per guidance response
    unsafe_responses/<split>-...parquet         one row per unsafe (risk-ignoring) response
    taxonomy.json, pipeline_config.yaml, rejects.jsonl   (optional provenance files)

so `datasets.load_dataset(release, "pairs")` works on datasets 5.x without scripts. The builder class
below reads the same layout; instantiate it directly on datasets 5.x, or use this file as a loading
script on datasets < 4.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass

import datasets

SCHEMA_VERSION = "1.0"
PIPELINE_VERSION = "0.1.0"

PAIRS = "pairs"
SAFE_RESPONSES = "safe_responses"
UNSAFE_RESPONSES = "unsafe_responses"
CONFIG_NAMES = (PAIRS, SAFE_RESPONSES, UNSAFE_RESPONSES)
RESPONSE_CONFIGS = {SAFE_RESPONSES: "safe", UNSAFE_RESPONSES: "unsafe"}

SAFE = "safe"
UNSAFE = "unsafe"
VERDICTS = (SAFE, UNSAFE)
CURATED = "curated"

# The four information-complementarity checks, and how a row's verdicts were obtained.
CHECKS = ("text_alone", "image_alone", "pair", "safe_twin")
VERIFICATION_GENERATED = "generated"  # the verifier wrote each verdict
VERIFICATION_MARGIN = "log_odds_margin"  # verdicts derived from per-check log-odds and a margin (scores stored)
VERIFICATION_CURATED = "curated"  # a person wrote and checked the pair
VERIFICATION_MODES = (VERIFICATION_GENERATED, VERIFICATION_MARGIN, VERIFICATION_CURATED)

_VERIFICATION = {
    **{check: datasets.Value("string") for check in CHECKS},
    "verifier": datasets.Value("string"),
    "mode": datasets.Value("string"),
    "scores": {check: datasets.Value("float64") for check in CHECKS},
    "margin": datasets.Value("float64"),
}

PAIR_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "image": datasets.Image(),
        "image_id": datasets.Value("string"),
        "image_source": datasets.Value("string"),
        "image_license": datasets.Value("string"),
        "image_attribution": datasets.Value("string"),
        "scene": datasets.Value("string"),
        "text": datasets.Value("string"),
        "risk_category": datasets.Value("string"),
        "risk_subcategory": datasets.Value("string"),
        "risk_rationale": datasets.Value("string"),
        "safe_twin_text": datasets.Value("string"),
        "verification": _VERIFICATION,
        "generator": datasets.Value("string"),
        "pipeline_version": datasets.Value("string"),
    }
)

RESPONSE_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "pair_id": datasets.Value("string"),
        "image": datasets.Image(),
        "image_id": datasets.Value("string"),
        "text": datasets.Value("string"),
        "risk_category": datasets.Value("string"),
        "response": datasets.Value("string"),
        "label": datasets.Value("string"),
        "generator": datasets.Value("string"),
    }
)

FEATURES: dict[str, datasets.Features] = {
    PAIRS: PAIR_FEATURES,
    SAFE_RESPONSES: RESPONSE_FEATURES,
    UNSAFE_RESPONSES: RESPONSE_FEATURES,
}

# One line per field, rendered into the dataset card; tests check that every field is documented.
FIELD_DOCS: dict[str, dict[str, str]] = {
    PAIRS: {
        "id": "Stable content-derived id: sha256 of the image bytes' sha256 and the query text (16 hex chars).",
        "image": "The photograph (embedded bytes; decodes to a PIL image).",
        "image_id": "Stable image id: first 16 hex chars of the sha256 of the normalised image bytes.",
        "image_source": "Where the photo comes from (dataset/repo, path and commit, or URL).",
        "image_license": "The photo's own licence (e.g. CC BY 2.0). Licences differ per image.",
        "image_attribution": "Original URL / credit line required by the licence.",
        "scene": "What the photo shows and what it affords.",
        "text": "The user's query: harmless on its own, risky together with the image.",
        "risk_category": "Risk category from the self-adaptive taxonomy (e.g. falls, fire_and_burns).",
        "risk_subcategory": "Finer risk label (e.g. fall_from_height).",
        "risk_rationale": "Why text alone and image alone are safe but the pair is not.",
        "safe_twin_text": "A minimally different query that is genuinely safe with the same image.",
        "verification": "How the pair was verified: `text_alone`, `image_alone`, `pair`, `safe_twin` verdicts (safe/unsafe); "
        "`verifier` (model id, or `human (curated)`); `mode`: `generated` (the verifier wrote each verdict), "
        "`log_odds_margin` (verdicts derived from the measured scores: a part is safe when it scores at least `margin` "
        "below the pair, the pair unsafe when every part is) or `curated`; `scores`: the verifier's log P(unsafe) - "
        "log P(safe) per check (null unless `log_odds_margin`); `margin` (null unless `log_odds_margin`).",
        "generator": "Model id that wrote the pair, or `curated` for hand-written pairs.",
        "pipeline_version": "Version of the generation pipeline that produced the row.",
    },
    SAFE_RESPONSES: {
        "id": "Response id (content-derived).",
        "pair_id": "`id` of the pair in the `pairs` config.",
        "image": "Same image as the pair.",
        "image_id": "Same image id as the pair.",
        "text": "Same query as the pair.",
        "risk_category": "Risk category of the pair.",
        "response": "The response text.",
        "label": "`safe` for safe_responses, `unsafe` for unsafe_responses.",
        "generator": "Model id that wrote the response, or `curated`.",
    },
}
FIELD_DOCS[UNSAFE_RESPONSES] = FIELD_DOCS[SAFE_RESPONSES]


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def image_id_for(image_bytes: bytes) -> str:
    """Stable id of a (normalised) image: depends only on its bytes."""
    return sha256_hex(image_bytes)[:16]


def normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def pair_id_for(image_id: str, text: str) -> str:
    """Stable id of a pair: depends only on the image and the whitespace-normalised query."""
    return sha256_hex(f"{image_id}\n{normalise_text(text)}")[:16]


def response_id_for(pair_id: str, label: str, response: str) -> str:
    return sha256_hex(f"{pair_id}\n{label}\n{normalise_text(response)}")[:16]


SAMPLE_SPLITS = {"train": 0.75, "test": 0.25}


def split_for_image(image_id: str, fractions: dict[str, float] = SAMPLE_SPLITS) -> str:
    """Deterministic split by image: the hash of the image id picks the split, so every pair of one photo
    lands in the same split and adding images never moves old ones. `fractions` e.g. {"train": 0.8,
    "test": 0.2} (normalised; the order is fixed by sorting the names). The one split function: the
    pipeline (run config `splits`) and the sample release (`SAMPLE_SPLITS`) both use it."""
    if not fractions or any(value < 0 for value in fractions.values()) or sum(fractions.values()) <= 0:
        raise ValueError(f"splits must map split names to non-negative fractions with a positive sum, got {fractions}")
    point = int(sha256_hex(f"split:{image_id}")[:12], 16) / 16**12
    total, cumulative = sum(fractions.values()), 0.0
    names = sorted(fractions)
    for name in names:
        cumulative += fractions[name] / total
        if point < cumulative:
            return name
    return names[-1]


# ----------------------------------------------------------------------------------------------------------
# Release layout helpers (shared by the builder, the release writer and the validator).
# ----------------------------------------------------------------------------------------------------------

SHARD_PATTERN = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.parquet$")


def shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def find_shards(root: str, config: str) -> dict[str, list[str]]:
    """Map split -> sorted shard paths for one config of a local release directory."""
    by_split: dict[str, list[str]] = {}
    for path in sorted(glob.glob(os.path.join(root, config, "*.parquet"))):
        match = SHARD_PATTERN.match(os.path.basename(path))
        if match:
            by_split.setdefault(match["split"], []).append(path)
    return by_split


CARD_FILE = "README.md"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a release: where (file, row, field) and what to do about it."""

    file: str
    message: str
    row: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class ReleaseError(ValueError):
    """A release that cannot be loaded; the message lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("invalid RMS release:\n" + "\n".join(f"  - {p}" for p in self.problems))


def read_card_metadata(root: str) -> dict:
    """The YAML front matter of a release's README.md (empty dict when there is none)."""
    import yaml

    with open(os.path.join(root, CARD_FILE), encoding="utf-8") as handle:
        text = handle.read()
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        raise ValueError(f"{os.path.join(root, CARD_FILE)}: YAML front matter is not closed with '---'")
    return yaml.safe_load(text[3:end]) or {}


def card_data_files(metadata: dict) -> dict[str, dict[str, list[str]]]:
    """config -> split -> relative shard paths, as the card's `configs:` declares them."""
    declared: dict[str, dict[str, list[str]]] = {}
    for entry in metadata.get("configs") or []:
        files = entry.get("data_files") or []
        if isinstance(files, (str, dict)):
            files = [files]
        splits: dict[str, list[str]] = {}
        for item in files:
            split, paths = ("train", item) if isinstance(item, str) else (item.get("split", "train"), item.get("path"))
            splits.setdefault(split, []).extend([paths] if isinstance(paths, str) else list(paths or []))
        declared[entry.get("config_name", "default")] = splits
    return declared


def check_layout(root: str) -> list[Problem]:
    """Cheap structural checks: card present, every config declared, declared shards exist and read as
    parquet with exactly the schema's features. Run before loading so that a broken release fails with
    a message naming the file instead of deep inside `datasets`."""
    import pyarrow.parquet as pq

    card = os.path.join(root, CARD_FILE)
    if not os.path.isdir(root):
        return [Problem(root, "not a directory; pass a release directory or a Hub dataset repo id")]
    if not os.path.exists(card):
        return [Problem(card, "missing: a release needs its dataset card with a YAML `configs:` section")]
    try:
        declared = card_data_files(read_card_metadata(root))
    except Exception as error:  # yaml errors carry line numbers; keep them
        return [Problem(card, f"cannot parse the YAML front matter: {error}")]
    problems = []
    for config in CONFIG_NAMES:
        if config not in declared:
            problems.append(Problem(card, f"config '{config}' is not declared in `configs:`", field="configs"))
            continue
        named = set()
        for split, paths in declared[config].items():
            for relative in paths:
                path = os.path.join(root, relative)
                named.add(os.path.normpath(path))
                if not os.path.exists(path):
                    problems.append(
                        Problem(card, f"names shard '{relative}' (config {config}, split {split}) which does not exist")
                    )
                    continue
                problems.extend(_check_shard_schema(pq, path, config))
        for split, paths in find_shards(root, config).items():
            for path in paths:
                if os.path.normpath(path) not in named:
                    problems.append(Problem(path, f"shard is not named in {CARD_FILE}'s configs; re-render the card"))
    return problems


def _check_shard_schema(pq, path: str, config: str) -> list[Problem]:
    try:
        schema = pq.read_schema(path)
        pq.ParquetFile(path).metadata  # footer readable: catches truncation
    except Exception as error:
        return [Problem(path, f"cannot read as parquet ({error}); the shard is truncated or corrupt: re-generate it")]
    try:
        features = datasets.Features.from_arrow_schema(schema)
    except Exception as error:
        return [Problem(path, f"cannot read the features from the parquet schema: {error}")]
    expected = FEATURES[config]
    problems = []
    for name in expected:
        if name not in features:
            problems.append(Problem(path, f"missing column (config {config} expects it)", field=name))
        elif features[name] != expected[name]:
            problems.append(Problem(path, f"has type {features[name]}, the schema says {expected[name]}", field=name))
    for name in features:
        if name not in expected:
            problems.append(Problem(path, f"unexpected column not in the {config} schema", field=name))
    return problems


def load(release: str, config: str = PAIRS, split: str | None = None, revision: str | None = None, **kwargs):
    """`datasets.load_dataset` for an RMS release, after checking a local release's layout.

    For a local directory a broken release raises `ReleaseError` naming each bad file; a Hub repo id is
    passed straight to `load_dataset` (with `revision`, e.g. "v1.0.0").
    """
    if config not in CONFIG_NAMES:
        raise ValueError(f"unknown config {config!r}; RMS configs are {', '.join(CONFIG_NAMES)}")
    if os.path.isdir(release):
        problems = check_layout(release)
        if problems:
            raise ReleaseError(problems)
    return datasets.load_dataset(release, config, split=split, revision=revision, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# The builder
# ----------------------------------------------------------------------------------------------------------

_CITATION = """\
@inproceedings{qu2025rms,
  title     = {Self-adaptive Dataset Construction for Real-World Multimodal Safety Scenarios},
  author    = {Qu and others},
  booktitle = {Findings of the Association for Computational Linguistics: EMNLP 2025},
  year      = {2025},
  eprint    = {2509.04403},
  archivePrefix = {arXiv}
}
"""

_DESCRIPTION = (
    "RMS: real photographs paired with harmless-sounding queries that are only unsafe together "
    "(information complementarity), with safe twins, guidance responses and unsafe responses."
)


@dataclass
class RMSConfig(datasets.BuilderConfig):
    """A config of the RMS builder. `release` is a local release directory or a Hub dataset repo id."""

    release: str | None = None
    revision: str | None = None


class RMS(datasets.GeneratorBasedBuilder):
    """Reads an RMS release (local directory or Hub repo id + revision) into the three configs.

    On datasets 5.x: ``RMS(config_name="pairs", release=path_or_repo).download_and_prepare()`` then
    ``.as_dataset()``. On datasets < 4 this file also works as a loading script:
    ``load_dataset("rms_dataset.py", "pairs", release=...)``.
    """

    BUILDER_CONFIG_CLASS = RMSConfig
    BUILDER_CONFIGS = [RMSConfig(name=name, description=f"RMS {name}") for name in CONFIG_NAMES]
    DEFAULT_CONFIG_NAME = PAIRS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=FEATURES[self.config.name],
            citation=_CITATION,
            homepage="https://arxiv.org/abs/2509.04403",
        )

    def _release_root(self) -> str:
        release = self.config.release or self.config.data_dir or getattr(self, "base_path", None)
        if not release:
            raise ValueError("RMS builder: pass release=<release directory or Hub dataset repo id>")
        if os.path.isdir(release):
            return release
        from huggingface_hub import snapshot_download

        return snapshot_download(
            repo_id=release,
            repo_type="dataset",
            revision=self.config.revision,
            allow_patterns=[f"{self.config.name}/*", "README.md"],
        )

    def _split_generators(self, dl_manager):
        root = self._release_root()
        if os.path.isdir(self.config.release or self.config.data_dir or ""):
            problems = check_layout(root)
            if problems:
                raise ReleaseError(problems)
        shards = find_shards(root, self.config.name)
        if not shards:
            raise FileNotFoundError(
                f"No shards for config '{self.config.name}' under {os.path.join(root, self.config.name)}: "
                "expected files named <split>-NNNNN-of-NNNNN.parquet. Is this an RMS release directory?"
            )
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"paths": paths}) for split, paths in sorted(shards.items())
        ]

    def _generate_examples(self, paths):
        import pyarrow.parquet as pq

        names = list(FEATURES[self.config.name])
        for path in paths:
            table = pq.read_table(path)
            missing = [name for name in names if name not in table.column_names]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing}; the shard does not match the RMS schema.")
            for row in table.select(names).to_pylist():
                yield row["id"], row
