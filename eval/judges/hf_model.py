"""Transformers plumbing shared by every judge that runs locally (the HF judge and the guard models).

* `load_model` loads a base model (Hub id, local dir or offline alias), optionally in 4-bit, optionally with
  a LoRA adapter on top (reading the adapter's ``judge_metadata.json`` for provenance).
* `encode` turns chat messages (+ images) into one left-padded batch.
* `length_grouped_batches` sorts items by prompt length, cuts batches and remembers the original order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_models import resolve_model

JUDGE_METADATA = "judge_metadata.json"


@dataclass
class LoadedModel:
    model: Any
    processor: Any  # a multimodal processor, or a tokenizer for text-only models
    tokenizer: Any
    is_multimodal: bool
    base_model: str
    adapter: str | None = None
    adapter_metadata: dict[str, Any] = field(default_factory=dict)


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


def _is_multimodal(config) -> bool:
    return getattr(config, "vision_config", None) is not None


def load_model(
    base_model: str | None = None,
    adapter: str | Path | None = None,
    *,
    load_in_4bit: bool = False,
    dtype: str = "auto",
    device: str | None = None,
) -> LoadedModel:
    """Load base model + processor (+ LoRA adapter). The base defaults to the adapter's recorded base model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    metadata = read_adapter_metadata(adapter) if adapter else {}
    if base_model is None:
        recorded = metadata.get("base_model")
        base_model = recorded.get("name_or_path") if isinstance(recorded, dict) else recorded
        if not base_model:
            raise ValueError(f"no base model given and {adapter}/{JUDGE_METADATA} does not name one; pass --base-model")
    path = resolve_model(base_model)
    config = AutoConfig.from_pretrained(path)
    multimodal = _is_multimodal(config)
    kwargs: dict[str, Any] = {}
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
    if dtype != "auto":
        kwargs["dtype"] = getattr(torch, dtype)
    if device:
        kwargs["device_map"] = device
    model_class = AutoModelForImageTextToText if multimodal else AutoModelForCausalLM
    model = model_class.from_pretrained(path, **kwargs)
    processor = AutoProcessor.from_pretrained(path) if multimodal else AutoTokenizer.from_pretrained(path)
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return LoadedModel(
        model=model, processor=processor, tokenizer=tokenizer, is_multimodal=multimodal,
        base_model=base_model, adapter=str(adapter) if adapter else None, adapter_metadata=metadata,
    )


def text_only_messages(messages: list[dict]) -> list[dict]:
    """Flatten content parts to plain strings (dropping image parts) for text-only chat templates."""
    flat = []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            content = "\n".join(part["text"] for part in content if part.get("type") == "text")
        flat.append({"role": message["role"], "content": content})
    return flat


def render_prompt(loaded: LoadedModel, messages: list[dict]) -> str:
    if not loaded.is_multimodal:
        messages = text_only_messages(messages)
    return loaded.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def encode(loaded: LoadedModel, prompts: list[str], images: list[Any]) -> dict:
    """One left-padded batch; ``images`` has one entry (PIL image or None) per prompt."""
    present = [image for image in images if image is not None]
    if loaded.is_multimodal:
        batch = loaded.processor(
            text=prompts, images=present or None, padding=True, return_tensors="pt",
        )
    else:
        batch = loaded.tokenizer(prompts, padding=True, return_tensors="pt", add_special_tokens=False)
    return batch.to(loaded.model.device)


def length_grouped_batches(lengths: list[int], batch_size: int) -> Iterator[list[int]]:
    """Indices into the original list, sorted by length (longest first) and cut into batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def prompt_lengths(loaded: LoadedModel, prompts: list[str]) -> list[int]:
    return [len(ids) for ids in loaded.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
