"""What a judge was trained on, and the one hold-out rule, whichever command scores it.

A trained judge's provenance is its adapter's ``judge_metadata.json`` (written by ``recipes.train``; read from
the adapter folder or the run folder above it, or from the Hub for an adapter repo id:
`modelcalls.judge_metadata.find_adapter_metadata`): the training data's
name and sources, the task, the base model and the train fraction. `training_record` turns it into the
``training`` block of every result cell, so ``eval.score`` and ``eval.grid`` write the same provenance, and
`counts_for` is the hold-out rule both use: a judge is ranked only on benchmarks of its task that were not
among its training sources (a judge trained on RMS is not ranked on RMS's own test split).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ZERO_SHOT = "zero-shot"


def trained_sources(metadata: dict[str, Any]) -> list[str]:
    return sorted({source["name"] for source in (metadata.get("data") or {}).get("sources", [])})


def training_record(metadata: dict[str, Any], *, kind: str, base_model: str | None = None,
                    name: str | None = None, **extra: Any) -> dict[str, Any]:
    """The ``training`` block of a cell. ``name`` (a grid's dataset or judge row name) wins; else the training
    data's name in the metadata, else its sources joined with ``+``; a model judge without metadata is
    zero-shot; any other judge (api, guard, callable) is named by ``name`` or its kind. ``model`` is the
    recipe's folder name (as the grid names models) or the base model."""
    sources = trained_sources(metadata)
    data = metadata.get("data") or {}
    zero_shot = kind == "hf" and not metadata
    recipe_path = metadata.get("recipe_path")
    recorded_base = (metadata.get("base_model") or {}).get("name_or_path")
    return {
        "dataset": name or data.get("name") or ("+".join(sources) if sources else ZERO_SHOT if zero_shot else kind),
        "zero_shot": zero_shot,
        "train_fraction": ((metadata.get("recipe") or {}).get("data") or {}).get("train_fraction") if sources else None,
        "task": metadata.get("task"),
        "model": Path(recipe_path).parent.name if recipe_path else recorded_base or base_model,
        "held_out_from": sources,
        **extra,
    }


def counts_for(name: str, task: str, training: dict[str, Any]) -> bool:
    """Whether a judge with this ``training`` block is scored and ranked on benchmark ``name`` / ``task``: the
    task it was trained for (any task when it was not trained) and not one of its training sources."""
    trained_task = training.get("task")
    return (trained_task is None or task == trained_task) and name not in set(training.get("held_out_from") or [])
