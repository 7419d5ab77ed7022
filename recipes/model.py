"""Load a recipe's base model (optionally 4-bit NF4 via bitsandbytes) and processor; build its LoRA config."""

from __future__ import annotations

import torch

from local_models import resolve_model
from recipes.config import LoraSettings, Recipe
from recipes.vision_attention import GROUPED, install_grouped_attention


def quantization_config(recipe: Recipe):
    """bitsandbytes 4-bit config (NF4, double quantisation, compute dtype), or None when 4-bit is off."""
    if not recipe.quantization.load_in_4bit:
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=recipe.quantization.quant_type,
        bnb_4bit_use_double_quant=recipe.quantization.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, recipe.quantization.compute_dtype),
    )


def _device_map(quantized: bool):
    if not quantized:
        return None
    if torch.cuda.is_available():
        from accelerate import PartialState

        return {"": PartialState().local_process_index}
    return {"": "cpu"}


def load_model_and_processor(recipe: Recipe):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = resolve_model(recipe.model.name_or_path)
    quant = quantization_config(recipe)
    model = AutoModelForImageTextToText.from_pretrained(
        path,
        revision=recipe.model.revision,
        dtype=getattr(torch, recipe.model.torch_dtype),
        quantization_config=quant,
        device_map=_device_map(quant is not None),
        attn_implementation=recipe.model.attn_implementation,
        trust_remote_code=recipe.model.trust_remote_code,
    )
    if recipe.model.vision_attention == GROUPED:
        install_grouped_attention(model)
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.training.gradient_checkpointing
        )
    processor = AutoProcessor.from_pretrained(path, revision=recipe.model.revision,
                                              trust_remote_code=recipe.model.trust_remote_code)
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return model, processor


def lora_config(lora: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        exclude_modules=lora.exclude_modules,
        bias=lora.bias,
        task_type="CAUSAL_LM",
    )
