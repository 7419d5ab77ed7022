"""RMS: the real-world multimodal safety dataset. Schema, ids and the `datasets` builder.

This module is the single definition of the dataset's schema. Generation writes it, validation checks
against it, recipes and eval read it. A release is a directory (or Hub dataset repo) laid out as

    README.md                                   dataset card: YAML `configs:` names the shards, `dataset_info`
                                                gives features and split sizes
    pairs/<split>-NNNNN-of-NNNNN.parquet        one row per image + text pair
    safe_responses/<split>-...parquet           one row per guidance response
    unsafe_responses/<split>-...parquet         one row per unsafe (risk-ignoring) response
    preference/<split>-...parquet               one row per pair: image, prompt, chosen, rejected (TRL's DPO format)
    checksums.sha256                            sha256 of every other file (`sha256sum -c checksums.sha256`)
    release.json, taxonomy.json, pipeline_config.yaml, rejects.jsonl   (provenance files)

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
PREFERENCE = "preference"
SOURCE_CONFIGS = (PAIRS, SAFE_RESPONSES, UNSAFE_RESPONSES)  # what the release writer is given
CONFIG_NAMES = (*SOURCE_CONFIGS, PREFERENCE)  # every config of a release (preference is derived)
RESPONSE_CONFIGS = {SAFE_RESPONSES: "safe", UNSAFE_RESPONSES: "unsafe"}

SAFE = "safe"
UNSAFE = "unsafe"
VERDICTS = (SAFE, UNSAFE)
VERDICT = datasets.ClassLabel(names=list(VERDICTS))  # label and verdicts: 0 = safe, 1 = unsafe
CURATED = "curated"

# The four information-complementarity checks, and how a row's verdicts were obtained.
CHECKS = ("text_alone", "image_alone", "pair", "safe_twin")
VERIFICATION_GENERATED = "generated"  # the verifier wrote each verdict
VERIFICATION_MARGIN = "log_odds_margin"  # verdicts derived from per-check log-odds and a margin (scores stored)
VERIFICATION_CURATED = "curated"  # a person wrote and checked the pair
VERIFICATION_MODES = (VERIFICATION_GENERATED, VERIFICATION_MARGIN, VERIFICATION_CURATED)

_VERIFICATION = {
    **{check: VERDICT for check in CHECKS},
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
        "label": VERDICT,
        "generator": datasets.Value("string"),
    }
)

# Conversational messages as TRL takes them: a list of {"role", "content"} (a python list = list of structs,
# on datasets 3.x too).
_MESSAGES = [{"role": datasets.Value("string"), "content": datasets.Value("string")}]

PREFERENCE_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "pair_id": datasets.Value("string"),
        "image": datasets.Image(),
        "image_id": datasets.Value("string"),
        "prompt": _MESSAGES,
        "chosen": _MESSAGES,
        "rejected": _MESSAGES,
        "risk_category": datasets.Value("string"),
    }
)

FEATURES: dict[str, datasets.Features] = {
    PAIRS: PAIR_FEATURES,
    SAFE_RESPONSES: RESPONSE_FEATURES,
    UNSAFE_RESPONSES: RESPONSE_FEATURES,
    PREFERENCE: PREFERENCE_FEATURES,
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
        "label": "ClassLabel (0 `safe`, 1 `unsafe`): `safe` for safe_responses, `unsafe` for unsafe_responses.",
        "generator": "Model id that wrote the response, or `curated`.",
    },
    PREFERENCE: {
        "id": "Preference id: sha256 of the chosen and the rejected response ids (16 hex chars).",
        "pair_id": "`id` of the pair in the `pairs` config.",
        "image": "Same image as the pair (TRL's DPO collator takes a single `image`).",
        "image_id": "Same image id as the pair.",
        "prompt": "The user turn: `[{role: user, content: <the pair's query>}]`.",
        "chosen": "The guidance response as the assistant turn (from safe_responses).",
        "rejected": "The unsafe response as the assistant turn (from unsafe_responses).",
        "risk_category": "Risk category of the pair.",
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


def preference_id_for(chosen_id: str, rejected_id: str) -> str:
    return sha256_hex(f"{chosen_id}\n{rejected_id}")[:16]


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
CHECKSUMS_FILE = "checksums.sha256"
UNRECORDED_DIRS = {".git", ".cache"}  # VCS and huggingface_hub download metadata: never part of a release


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


def card_data_files(card_path: str) -> dict[str, dict[str, list[str]]]:
    """config -> split -> relative shard paths, as the card's `configs:` declares them (read with
    huggingface_hub's `DatasetCard` and datasets' `MetadataConfigs`)."""
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    declared: dict[str, dict[str, list[str]]] = {}
    for config, entry in MetadataConfigs.from_dataset_card_data(DatasetCard.load(card_path).data).items():
        files = entry.get("data_files") or []
        splits: dict[str, list[str]] = {}
        for item in [files] if isinstance(files, str) else files:
            split, paths = ("train", item) if isinstance(item, str) else (item["split"], item["path"])
            splits.setdefault(split, []).extend([paths] if isinstance(paths, str) else paths)
        declared[config] = splits
    return declared


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def release_file_paths(root: str) -> list[str]:
    """Every file of a local release (POSIX paths relative to `root`) except checksums.sha256 itself."""
    paths = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in UNRECORDED_DIRS)
        for name in files:
            relative = os.path.relpath(os.path.join(directory, name), root).replace(os.sep, "/")
            if relative != CHECKSUMS_FILE:
                paths.append(relative)
    return sorted(paths)


def read_checksums(root: str) -> dict[str, str]:
    """path -> sha256 recorded in the release's checksums.sha256 (`sha256sum` format: "<hex>  <path>")."""
    recorded = {}
    with open(os.path.join(root, CHECKSUMS_FILE), encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            digest, separator, path = line.rstrip("\n").partition("  ")
            if not separator or not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(f"{os.path.join(root, CHECKSUMS_FILE)}, line {number}: not '<sha256>  <path>'")
            recorded[path] = digest
    return recorded


def verify_checksums(root: str) -> list[Problem]:
    """Recompute the sha256 of every file of the local release `root` and compare with checksums.sha256:
    one Problem per file that differs, is missing, or is not recorded."""
    checksums = os.path.join(root, CHECKSUMS_FILE)
    if not os.path.exists(checksums):
        return [Problem(checksums, "missing: the release does not record its files' sha256; rewrite it with this version")]
    try:
        recorded = read_checksums(root)
    except (ValueError, UnicodeDecodeError) as error:
        return [Problem(checksums, str(error))]
    problems = []
    present = release_file_paths(root)
    for path in present:
        full = os.path.join(root, path)
        if path not in recorded:
            problems.append(Problem(full, f"not recorded in {CHECKSUMS_FILE}: a file added after the release was written"))
        elif file_sha256(full) != recorded[path]:
            problems.append(Problem(full, f"sha256 differs from the one recorded in {CHECKSUMS_FILE}: the file was changed "
                                          "after the release was written (re-download or rebuild the release)"))
    for path in sorted(set(recorded) - set(present)):
        problems.append(Problem(os.path.join(root, path), f"missing, though {CHECKSUMS_FILE} records it"))
    return problems


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
        declared = card_data_files(card)
    except Exception as error:  # yaml errors carry line numbers; keep them
        return [Problem(card, f"cannot read the card's YAML `configs:`: {error}")]
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
    # Compared as Arrow types (the parquet's own schema), which every datasets version reads alike.
    expected = FEATURES[config].arrow_schema
    problems = []
    for field in expected:
        if field.name not in schema.names:
            problems.append(Problem(path, f"missing column (config {config} expects it)", field=field.name))
        elif schema.field(field.name).type != field.type:
            problems.append(Problem(path, f"has type {schema.field(field.name).type}, the schema says {field.type}",
                                    field=field.name))
    for name in schema.names:
        if name not in expected.names:
            problems.append(Problem(path, f"unexpected column not in the {config} schema", field=name))
    return problems


def load(release: str, config: str = PAIRS, split: str | None = None, revision: str | None = None,
         verify: bool = False, **kwargs):
    """`datasets.load_dataset` for an RMS release, after checking a local release's layout.

    For a local directory a broken release raises `ReleaseError` naming each bad file; with `verify=True`
    every file's sha256 is also checked against checksums.sha256 (a changed byte anywhere is refused). A Hub
    repo id is passed straight to `load_dataset` (with `revision`, e.g. "v1.0.0").
    """
    if config not in CONFIG_NAMES:
        raise ValueError(f"unknown config {config!r}; RMS configs are {', '.join(CONFIG_NAMES)}")
    if os.path.isdir(release):
        problems = check_layout(release)
        if verify and not problems:
            problems = verify_checksums(release)
        if problems:
            raise ReleaseError(problems)
    elif verify:
        raise ValueError("verify=True checks a local release directory; the Hub checks a repo's files itself")
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


class RMS(datasets.ArrowBasedBuilder):
    """Reads an RMS release (local directory or Hub repo id + revision) into its configs.

    The shards the card declares are fetched through the download manager (a Hub release by its
    ``hf://datasets/<repo>@<revision>`` paths) and read a parquet row group at a time as Arrow tables.
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

    def _release_base(self) -> str:
        """The release's root: a local directory, else ``hf://datasets/<repo>@<revision>``."""
        release = self.config.release or self.config.data_dir or getattr(self, "base_path", None)
        if not release:
            raise ValueError("RMS builder: pass release=<release directory or Hub dataset repo id>")
        if os.path.isdir(release):
            problems = check_layout(release)
            if problems:
                raise ReleaseError(problems)
            return release
        return f"hf://datasets/{release}@{self.config.revision or 'main'}"

    def _split_generators(self, dl_manager):
        base = self._release_base()
        card = dl_manager.download(f"{base}/{CARD_FILE}")
        splits = card_data_files(card).get(self.config.name)
        if not splits:
            raise FileNotFoundError(f"{base}/{CARD_FILE} declares no shards for config '{self.config.name}'; "
                                    "is this an RMS release?")
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"paths": dl_manager.download([f"{base}/{p}" for p in paths])})
            for split, paths in sorted(splits.items())
        ]

    def _generate_tables(self, paths):
        import pyarrow.parquet as pq
        from datasets.table import table_cast

        schema = self.info.features.arrow_schema
        for index, path in enumerate(paths):
            parquet = pq.ParquetFile(path)
            missing = [name for name in schema.names if name not in parquet.schema_arrow.names]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing}; the shard does not match the RMS schema.")
            for group in range(parquet.num_row_groups):
                yield f"{index}-{group}", table_cast(parquet.read_row_group(group, columns=schema.names), schema)
