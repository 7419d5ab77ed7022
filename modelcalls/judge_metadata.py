"""The recipes' ``judge_metadata.json``: what a trained adapter records about itself (base model, training
data, hold-outs), read from the adapter folder, the run folder above it or the adapter's Hub repo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

JUDGE_METADATA = "judge_metadata.json"


def find_adapter_metadata(adapter: str | Path) -> Path | None:
    """The recipes' ``judge_metadata.json`` of an adapter: in its folder or the run folder above it, or in
    the adapter's Hub repo when ``adapter`` is a repo id (None when there is none: trained elsewhere)."""
    local = Path(adapter)
    if local.exists():
        return next((c for c in (local / JUDGE_METADATA, local.parent / JUDGE_METADATA) if c.is_file()), None)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(str(adapter), JUDGE_METADATA))
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError):
        return None


def read_adapter_metadata(adapter: str | Path) -> dict[str, Any]:
    """The adapter's ``judge_metadata.json`` (`find_adapter_metadata`) parsed ({} if none)."""
    path = find_adapter_metadata(adapter)
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
