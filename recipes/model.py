"""Load a recipe's base model (4-bit through trl's own quantization config when ``model.load_in_4bit``) and its
processor (through the architecture registry), and build its LoRA config (trl's, with the registry's exclusions)."""

from __future__ import annotations

import re
from typing import Any

from local_models import resolve_model
from recipes.architectures import Architecture, load_processor
from recipes.config import RecipeModelConfig
from recipes.vision_attention import GROUPED, install_grouped_attention


def lora_targets(model: RecipeModelConfig, arch: Architecture) -> list[str] | str:
    """The recipe's ``lora_target_modules``, else the architecture's. trl's `ModelConfig` turns a one-item list
    into its item (a string is a regex for peft); a plain module name is put back into a list."""
    targets = model.lora_target_modules or list(arch.lora_targets)
    if isinstance(targets, str) and re.fullmatch(r"\w+", targets) and targets != "all-linear":
        return [targets]
    return targets


def lora_config(model: RecipeModelConfig, arch: Architecture):
    """trl's LoRA config from the model section, on the recipe's targets, leaving the vision modules alone."""
    from trl import get_peft_config

    config = get_peft_config(model)
    config.target_modules = lora_targets(model, arch)
    config.exclude_modules = arch.vision_modules
    return config


def _device_map() -> dict[str, Any]:
    """A quantised model lives whole on this process's device (its GPU under accelerate, else the CPU)."""
    import torch

    if torch.cuda.is_available():
        from accelerate import PartialState

        return {"": PartialState().local_process_index}
    return {"": "cpu"}


def load_model_and_processor(model_config: RecipeModelConfig, arch: Architecture, *, gradient_checkpointing: bool):
    import torch
    from transformers import AutoModelForImageTextToText
    from trl import get_quantization_config

    path = resolve_model(model_config.model_name_or_path)
    quantization = get_quantization_config(model_config)
    model = AutoModelForImageTextToText.from_pretrained(
        path,
        revision=model_config.model_revision,
        dtype=getattr(torch, model_config.dtype) if model_config.dtype not in (None, "auto") else "auto",
        quantization_config=quantization,
        device_map=_device_map() if quantization is not None else None,
        attn_implementation=model_config.attn_implementation,
    )
    if model_config.vision_attention == GROUPED:
        install_grouped_attention(model)
    if quantization is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    processor = load_processor(path, arch.model_type, revision=model_config.model_revision)
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return model, processor
