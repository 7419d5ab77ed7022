"""The transformers plumbing every local judge runs on is `modelcalls.transformers_backend` (one
model-call layer for generation and eval): loading with adapter and 4-bit, chat rendering, left-padded
batches, last-position scoring. This module names those pieces for the judges and adds what is
judge-specific: the base model read from an adapter's ``judge_metadata.json``."""

from __future__ import annotations

from pathlib import Path

from modelcalls import transformers_backend
from modelcalls.transformers_backend import (
    JUDGE_METADATA,
    LoadedModel,
    encode,
    last_position_logits,
    length_grouped_batches,
    read_adapter_metadata,
    render_chat,
)


def load_model(base_model: str | None = None, adapter: str | Path | None = None, *, load_in_4bit: bool = False,
               dtype: str = "auto", device: str | None = None) -> LoadedModel:
    """Load a judge: base model (+ LoRA adapter). The base defaults to the adapter's recorded base model."""
    if base_model is None:
        recorded = read_adapter_metadata(adapter).get("base_model") if adapter else None
        base_model = recorded.get("name_or_path") if isinstance(recorded, dict) else recorded
        if not base_model:
            raise ValueError(f"no base model given and {adapter}/{JUDGE_METADATA} does not name one; pass --base-model")
    return transformers_backend.load_model(base_model, adapter, load_in_4bit=load_in_4bit, dtype=dtype, device=device)


def render_prompt(loaded: LoadedModel, messages: list[dict]) -> str:
    """The judge prompt as the model's chat template writes it (text-only models get the text parts)."""
    return render_chat(loaded, messages)


def prompt_lengths(loaded: LoadedModel, prompts: list[str]) -> list[int]:
    return [len(ids) for ids in loaded.tokenizer(prompts, add_special_tokens=False)["input_ids"]]


__all__ = ["JUDGE_METADATA", "LoadedModel", "encode", "last_position_logits", "length_grouped_batches", "load_model",
           "prompt_lengths", "read_adapter_metadata", "render_prompt"]
