"""Render a release's README.md (and LICENSE.md) from `dataset_card.md` and the release's real statistics.

The card's metadata is huggingface_hub's own `DatasetCardData`: `configs` written by datasets'
`MetadataConfigs` and `dataset_info` (features and split sizes) by its `DatasetInfosDict`, so the Hub, the
dataset viewer and `load_dataset_builder(...).info` read them as they read any dataset. The card is never
hand-edited: `render_card(root)` reads the shards' parquet metadata and a few columns plus `release.json`, so
re-rendering an unchanged release gives the same bytes (validation checks this).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import datasets
import jinja2
import pyarrow.parquet as pq
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

import rms_dataset as rms

TEMPLATE = Path(__file__).resolve().parents[2] / "dataset_card.md"
RELEASE_INFO = "release.json"
LICENSE_FILE = "LICENSE.md"
TEXT_LICENSE = "CC BY 4.0"
DEFAULT_REPO_ID = "ORG/rms"
PAPER_URL = "https://arxiv.org/abs/2509.04403"
_CREATIVE_COMMONS = re.compile(r"^CC (?P<kind>BY(?:-[A-Z]{2})*) (?P<version>\d\.\d)$")
_OTHER_LICENSE_URLS = {"CC0 1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
                       "Apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0"}
GATED_PROMPT = (
    "Content warning: this dataset pairs everyday photographs, some showing people, with requests that are risky "
    "in context (self-harm, falls, fire, poisoning, privacy and more), and includes deliberately unsafe model "
    "responses. Access is for safety research: training and evaluating safety judges and safer assistants. "
    "By requesting access you agree to these terms: you will not use the data to cause harm, to train models "
    "to produce the unsafe responses, or to identify, profile or target the people in the photographs; you "
    "will keep each photograph's licence and attribution when you redistribute it."
)
GATED_FIELDS = {"Affiliation": "text", "Intended use": "text",
                "I will use this dataset for safety research only and accept the terms above": "checkbox"}


@dataclass(frozen=True)
class ReleaseInfo:
    pretty_name: str = "RMS: Real-world Multimodal Safety"
    version: str = "0.0.0"
    repo_id: str = DEFAULT_REPO_ID
    schema_version: str = rms.SCHEMA_VERSION
    pipeline_version: str = rms.PIPELINE_VERSION

    @classmethod
    def read(cls, root: str | Path) -> ReleaseInfo:
        path = Path(root) / RELEASE_INFO
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}")
        return cls(**data)

    def write(self, root: str | Path) -> None:
        (Path(root) / RELEASE_INFO).write_text(json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n")


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def _feature_type(feature) -> str:
    if isinstance(feature, dict):
        return "struct{" + ", ".join(feature) + "}"
    if isinstance(feature, list):
        return "list[struct{" + ", ".join(feature[0]) + "}]"
    if isinstance(feature, datasets.ClassLabel):
        return "ClassLabel(" + ", ".join(feature.names) + ")"
    if isinstance(feature, datasets.Value):
        return feature.dtype
    if type(feature).__name__ == "List":
        return "list[struct{" + ", ".join(feature.feature) + "}]"
    return type(feature).__name__


def license_url(name: str) -> str | None:
    """The licence text's URL for the licences photos come under (None when unknown)."""
    match = _CREATIVE_COMMONS.match(name)
    if match:
        return f"https://creativecommons.org/licenses/{match['kind'].lower()}/{match['version']}/"
    return _OTHER_LICENSE_URLS.get(name)


def _source_dataset(image_source: str) -> str | None:
    """The Hub dataset a photo comes from, when its source names one (``owner/name/path@commit``)."""
    match = re.match(r"^([A-Za-z0-9][\w.-]*/[\w.-]+)/", image_source)
    return match[1] if match and "://" not in image_source else None


def release_statistics(root: str | Path) -> dict:
    """Counts per config/split, per risk category, per image licence, read from the shards on disk."""
    root = str(root)
    configs, split_names = [], []
    categories: dict[str, Counter] = defaultdict(Counter)
    licenses: Counter = Counter()
    generators: set[str] = set()
    images: set[str] = set()
    sources: set[str] = set()
    n_pairs = 0
    for config in rms.CONFIG_NAMES:
        shards = rms.find_shards(root, config)
        splits, counts = [], {}
        for split in sorted(shards, key=lambda s: (s != "train", s != "validation", s)):
            paths = shards[split]
            metadata = [pq.ParquetFile(path).metadata for path in paths]
            counts[split] = sum(meta.num_rows for meta in metadata)
            splits.append({"name": split, "paths": [os.path.relpath(p, root).replace(os.sep, "/") for p in paths],
                           "num_examples": counts[split],
                           "num_bytes": sum(meta.row_group(g).total_byte_size for meta in metadata
                                            for g in range(meta.num_row_groups)),
                           "download_size": sum(os.path.getsize(path) for path in paths)})
            if split not in split_names:
                split_names.append(split)
            columns = {rms.PAIRS: ["generator", "risk_category", "risk_subcategory", "image_id", "image_license",
                                   "image_source"],
                       rms.PREFERENCE: []}.get(config, ["generator"])
            for path in paths:
                for row in pq.read_table(path, columns=columns).to_pylist() if columns else []:
                    generators.add(row["generator"])
                    if config == rms.PAIRS:
                        categories[row["risk_category"]][row["risk_subcategory"]] += 1
                        if row["image_id"] not in images:
                            images.add(row["image_id"])
                            licenses[row["image_license"]] += 1
                            sources.add(_source_dataset(row["image_source"]) or "")
        if config == rms.PAIRS:
            n_pairs = sum(counts.values())
        configs.append({"name": config, "splits": splits, "counts": counts, "total": sum(counts.values())})
    return {
        "configs": configs,
        "split_names": split_names,
        "n_pairs": n_pairs,
        "n_images": len(images),
        "n_categories": len(categories),
        "categories": [
            {"name": name, "count": sum(subs.values()), "subcategories": sorted(subs)}
            for name, subs in sorted(categories.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        ],
        "image_licenses": [{"name": name, "count": count, "url": license_url(name)}
                           for name, count in sorted(licenses.items())],
        "source_datasets": sorted(source for source in sources if source),
        "generators": sorted(generators),
    }


def _pipeline_summary(root: str) -> str:
    path = os.path.join(root, "pipeline_config.yaml")
    if not os.path.exists(path):
        return ""
    import yaml

    with open(path, encoding="utf-8") as handle:  # libyaml's loader where present: 10x the pure-Python one
        config = (yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}).get("run") or {}
    roles = []
    for role in ("generator", "verifier"):
        spec = config.get(role) or {}
        if isinstance(spec, dict) and spec.get("model"):
            roles.append(f"{role} `{spec['model']}` ({spec.get('backend', '?')})")
    return "; ".join(roles) + " (full config in `pipeline_config.yaml`)" if roles else "see `pipeline_config.yaml`"


def card_data(info: ReleaseInfo, stats: dict) -> DatasetCardData:
    """The card's YAML metadata as huggingface_hub's `DatasetCardData`, with datasets' own `configs` and
    `dataset_info` (features and split sizes per config) written by `MetadataConfigs` and `DatasetInfosDict`."""
    data = DatasetCardData(
        pretty_name=info.pretty_name,
        language=["en"],
        license="other",
        license_name="mixed-per-image",
        license_link=LICENSE_FILE,
        annotations_creators=["machine-generated", "expert-generated"],
        language_creators=["machine-generated", "expert-generated"],
        multilinguality=["monolingual"],
        size_categories=[_size_category(stats["n_pairs"])],
        source_datasets=["original", *stats["source_datasets"]],
        task_categories=["visual-question-answering", "image-text-to-text", "text-classification"],
        tags=["safety", "multimodal", "vision-language", "red-teaming", "dpo", "not-for-all-audiences"],
        extra_gated_prompt=GATED_PROMPT,
        extra_gated_fields=GATED_FIELDS,
    )
    MetadataConfigs({
        config["name"]: {"data_files": [{"split": split["name"], "path": split["paths"]} for split in config["splits"]],
                         **({"default": True} if config["name"] == rms.PAIRS else {})}
        for config in stats["configs"]
    }).to_dataset_card_data(data)
    DatasetInfosDict({
        config["name"]: datasets.DatasetInfo(
            config_name=config["name"],
            features=rms.FEATURES[config["name"]],
            splits=datasets.SplitDict({split["name"]: datasets.SplitInfo(
                name=split["name"], num_bytes=split["num_bytes"], num_examples=split["num_examples"])
                for split in config["splits"]}),
            download_size=sum(split["download_size"] for split in config["splits"]),
            dataset_size=sum(split["num_bytes"] for split in config["splits"]),
        )
        for config in stats["configs"]
    }).to_dataset_card_data(data)
    return data


def _environment() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render_card(root: str | Path) -> str:
    """The README.md text for the release at `root` (it loads with `huggingface_hub.DatasetCard`)."""
    root = str(root)
    info = ReleaseInfo.read(root)
    stats = release_statistics(root)
    field_docs = [
        {
            "name": config,
            "fields": [
                {"name": name, "type": _feature_type(feature), "doc": rms.FIELD_DOCS[config][name]}
                for name, feature in rms.FEATURES[config].items()
            ],
        }
        for config in rms.CONFIG_NAMES
    ]
    template = _environment().from_string(TEMPLATE.read_text(encoding="utf-8"))
    text = template.render(
        **stats,
        card_data=card_data(info, stats).to_yaml(),
        pretty_name=info.pretty_name,
        version=info.version,
        repo_id=info.repo_id,
        text_license=TEXT_LICENSE,
        license_file=LICENSE_FILE,
        paper_url=PAPER_URL,
        gated_prompt=GATED_PROMPT,
        field_docs=field_docs,
        pipeline_summary=_pipeline_summary(root),
        citation=rms._CITATION.strip(),
    )
    DatasetCard(text)  # the Hub's own parser must read it
    return text


def render_license(root: str | Path) -> str:
    """LICENSE.md (the card's `license_link`): the text licence and each photo licence with its count and text."""
    stats = release_statistics(root)
    lines = ["# Licences", "",
             f"The text annotations (queries, rationales, responses) are released under {TEXT_LICENSE} "
             f"({license_url(TEXT_LICENSE)}).", "",
             "The photographs keep their own licences; each row names its photo's `image_license`, `image_source` "
             "and `image_attribution` (keep the attribution when you redistribute a photo):", ""]
    for entry in stats["image_licenses"]:
        link = f" ({entry['url']})" if entry["url"] else " (see each row's image_attribution for its terms)"
        lines.append(f"- {entry['name']}: {entry['count']} photograph(s){link}")
    return "\n".join(lines) + "\n"
