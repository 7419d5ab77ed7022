"""What identifies a local model's outputs: the Hub commit it was loaded from, else a fingerprint of its
weight files, and the sha256 of a LoRA adapter's files (so an adapter retrained into the same folder is a
new model for every cache key)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

_EDGE = 1 << 20


def _file_fingerprint(path: Path, *, full: bool) -> str:
    """sha256 of a file (``full``), or of its size plus its first and last MiB (big base-model weights)."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if full or size <= 2 * _EDGE:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(str(size).encode())
            digest.update(handle.read(_EDGE))
            handle.seek(size - _EDGE)
            digest.update(handle.read(_EDGE))
    return digest.hexdigest()


def weights_fingerprint(folder: Path, *, full: bool) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in {".safetensors", ".bin", ".json"})
    for path in files:
        digest.update(f"{path.name}:{_file_fingerprint(path, full=full or path.suffix == '.json')}".encode())
    return digest.hexdigest()[:16]


def hub_commit(path: str | Path, revision: str | None, filename: str = "config.json") -> str | None:
    """The commit a Hub repo id was loaded from: the snapshot folder its ``filename`` sits in (a branch or
    a tag resolves to the commit it points to; works offline from the cache). ``None`` for a local path."""
    if Path(path).exists():
        return None
    from huggingface_hub import hf_hub_download

    snapshot = Path(hf_hub_download(str(path), filename, revision=revision)).parent
    return snapshot.name if snapshot.parent.name == "snapshots" else None


def model_fingerprint(name: str, path: str, config, adapter: str | Path | None,
                      revision: str | None = None) -> dict[str, Any]:
    """What identifies a loaded model's outputs: the Hub commit it was loaded from, else a fingerprint of
    the local weights (config + size and edges of every weight file), and the sha256 of the adapter files."""
    commit = getattr(config, "_commit_hash", None) or hub_commit(path, revision)
    fingerprint: dict[str, Any] = {"base_model": name, "revision": commit}
    if commit is None and Path(path).is_dir():
        fingerprint["weights"] = weights_fingerprint(Path(path), full=False)
    if adapter is not None and Path(adapter).is_dir():
        fingerprint["adapter_sha256"] = weights_fingerprint(Path(adapter), full=True)
    elif adapter is not None:  # a Hub adapter id: the commit PEFT loaded
        fingerprint["adapter_revision"] = hub_commit(adapter, None, "adapter_config.json")
    return fingerprint


