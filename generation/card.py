"""Render a release's README.md from `dataset_card.md` and the release's real statistics.

The card is never hand-edited: `render_card(root)` reads the shards (a few columns only) and the release's
`release.json`, so re-rendering an unchanged release gives the same bytes (validation checks this).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import datasets
import jinja2
import pyarrow.parquet as pq

import rms_dataset as rms

TEMPLATE = Path(__file__).resolve().parent.parent / "dataset_card.md"
RELEASE_INFO = "release.json"
TEXT_LICENSE = "CC BY 4.0"
DEFAULT_REPO_ID = "ORG/rms"


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
    return feature.dtype if isinstance(feature, datasets.Value) else type(feature).__name__


def release_statistics(root: str | Path) -> dict:
    """Counts per config/split, per risk category, per image licence, read from the shards on disk."""
    root = str(root)
    configs, split_names = [], []
    categories: dict[str, Counter] = defaultdict(Counter)
    licenses: Counter = Counter()
    generators: set[str] = set()
    images: set[str] = set()
    n_pairs = 0
    for config in rms.CONFIG_NAMES:
        shards = rms.find_shards(root, config)
        splits, counts = [], {}
        for split in sorted(shards, key=lambda s: (s != "train", s != "validation", s)):
            paths = shards[split]
            counts[split] = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
            splits.append({"name": split, "paths": [os.path.relpath(p, root) for p in paths]})
            if split not in split_names:
                split_names.append(split)
            columns = ["generator"] + (["risk_category", "risk_subcategory", "image_id", "image_license"] if config == rms.PAIRS else [])
            for path in paths:
                for row in pq.read_table(path, columns=columns).to_pylist():
                    generators.add(row["generator"])
                    if config == rms.PAIRS:
                        categories[row["risk_category"]][row["risk_subcategory"]] += 1
                        if row["image_id"] not in images:
                            images.add(row["image_id"])
                            licenses[row["image_license"]] += 1
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
        "image_licenses": [{"name": name, "count": count} for name, count in sorted(licenses.items())],
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


def render_card(root: str | Path) -> str:
    """The README.md text for the release at `root`."""
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
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        **stats,
        pretty_name=info.pretty_name,
        version=info.version,
        repo_id=info.repo_id,
        size_category=_size_category(stats["n_pairs"]),
        text_license=TEXT_LICENSE,
        field_docs=field_docs,
        pipeline_summary=_pipeline_summary(root),
        citation=rms._CITATION.strip(),
    )
