"""Per-sample logs of a cell (``<cell>.samples.jsonl``): one line per item with what a reviewer needs to check
it without re-joining raw files: item id, benchmark, gold label, verdict, p_unsafe, the judge's raw output,
the sha256 of the exact prompt the judge rendered, and the image reference (its path, ``sha256:<digest>``
for an embedded image, or ``missing:<path>``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from atomic_files import write_atomic
from eval.judges.base import Judge
from eval.judges.images import image_sha256
from eval.predictions import ScoredItem
from judging.records import JudgeExample

SUFFIX = ".samples.jsonl"


def samples_path(cell_path: Path | str) -> Path:
    """Where a cell's samples go: beside its result JSON (``cells/X.json`` -> ``cells/X.samples.jsonl``)."""
    cell_path = Path(cell_path)
    return cell_path.with_name(cell_path.name.removesuffix(".json") + SUFFIX)


def image_ref(example: JudgeExample) -> str | None:
    if isinstance(example.image, (str, Path)):
        return str(example.image)
    if example.image is not None:
        return f"sha256:{image_sha256(example.image)}"
    missing = example.meta.get("missing_image")
    return f"missing:{missing}" if missing else None


def sample_record(judge: Judge, benchmark: str, item: ScoredItem) -> dict[str, Any]:
    example, prediction = item.example, item.prediction
    return {"item_id": example.source_id, "benchmark": benchmark, "source": example.source, "task": example.task,
            "gold": example.label, "verdict": prediction.label, "p_unsafe": prediction.p_unsafe,
            "raw_output": prediction.raw_text, "category": example.category,
            "prompt_sha256": hashlib.sha256(judge.rendered_prompt(example).encode("utf-8")).hexdigest(),
            "image": image_ref(example)}


def write_samples(path: Path | str, judge: Judge, benchmark: str, items: Iterable[ScoredItem]) -> Path:
    """Write a cell's samples whole or not at all; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(json.dumps(sample_record(judge, benchmark, item), ensure_ascii=False, default=str) + "\n"
                               for item in items))
    return path
