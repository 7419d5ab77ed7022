"""``judge_metadata.json``: the provenance of a trained judge, read by the leaderboard."""

from __future__ import annotations

import json
import subprocess
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from atomic_files import write_atomic
from judging.format import FORMAT_VERSION
from recipes.config import Recipe
from recipes.data import TrainingData

METADATA_FILE = "judge_metadata.json"
METADATA_VERSION = "1"
_LIBRARIES = ("torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "datasets")


def git_commit(repo: Path | None = None) -> str | None:
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                               text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_metadata(recipe: Recipe, data: TrainingData, *, final_loss: float | None, global_step: int,
                   adapter_dir: Path, merged_dir: Path | None) -> dict[str, Any]:
    return {
        "metadata_version": METADATA_VERSION,
        "judge_format_version": FORMAT_VERSION,
        "task": recipe.data.task,
        "base_model": {"name_or_path": recipe.model.model_name_or_path, "revision": recipe.model.model_revision},
        "recipe_path": recipe.path,
        "recipe": recipe.to_dict(),
        "data": {
            "name": recipe.data.name or "+".join(sorted({source.name for source in recipe.data.sources})),
            "n_train_examples": len(data.examples),
            "label_counts": data.label_counts,
            "sources": [
                {"name": s.name, "split": s.split, "provenance": s.provenance, "read_label_counts": s.read,
                 "used_label_counts": s.used}
                for s in data.sources
            ],
        },
        "seed": recipe.training.seed,
        "git_commit": git_commit(),
        "final_train_loss": final_loss,
        "global_step": global_step,
        "adapter_dir": str(adapter_dir),
        "merged_dir": str(merged_dir) if merged_dir else None,
        "library_versions": library_versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_metadata(path: Path, metadata: dict[str, Any]) -> Path:
    """Written whole or not at all (`atomic_files.write_atomic`)."""
    write_atomic(path, json.dumps(metadata, indent=2, sort_keys=False, default=str))
    return path


def read_metadata(output_dir: str | Path) -> dict[str, Any]:
    path = Path(output_dir) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {output_dir} is not a finished recipes.train output")
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = ["METADATA_FILE", "build_metadata", "write_metadata", "read_metadata", "git_commit", "library_versions"]
