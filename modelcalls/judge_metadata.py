"""The recipes' ``judge_metadata.json``: what a trained adapter records about itself (base model, training
data, hold-outs), read from the adapter folder or the run folder above it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

JUDGE_METADATA = "judge_metadata.json"


def read_adapter_metadata(adapter: str | Path) -> dict[str, Any]:
    """The recipes' ``judge_metadata.json`` in the adapter folder or the run folder above it ({} if none)."""
    candidates = [Path(adapter) / JUDGE_METADATA, Path(adapter).parent / JUDGE_METADATA]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); re-run training or delete the file") from error


def recorded_base_model(adapter: str | Path) -> str:
    """The base model an adapter was trained on, as its metadata records it; an error naming the file when
    the metadata does not say (pass the base model explicitly then)."""
    recorded = read_adapter_metadata(adapter).get("base_model")
    base_model = recorded.get("name_or_path") if isinstance(recorded, dict) else recorded
    if not base_model:
        raise ValueError(f"no base model given and {adapter}/{JUDGE_METADATA} does not name one; pass --base-model")
    return base_model
