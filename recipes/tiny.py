"""``--tiny``: a recipe run on a small, randomly initialised model of its own architecture, on a laptop CPU.

`tiny_model_path(model_type)` builds (once, cached under ``$RMS_CACHE/models``) a checkpoint of the same model
and config classes as the registry entry's real checkpoints, with small dimensions
(`Architecture.tiny_config`), the same processor class (transformers' PIL image processors: no torchvision
needed) at a small image size, the real checkpoint's chat template (``recipes/templates/``), and a tokenizer
carrying the same special tokens: the offline SmolLM2 tokenizer (`local_models.smollm2_path`) with the
architecture's special tokens added. Generation stops at the template's end-of-turn token.

`tiny_overrides(recipe)` is what ``--tiny`` changes in a recipe: the model (that checkpoint), the run's
length (2 optimiser steps on 4 examples, batch 2, no intermediate checkpoints) and, on a machine without
CUDA, what only a GPU runs: bitsandbytes' paged 8-bit optimisers (``optim: adamw_torch``) and bf16 weights
(``dtype: float32``). Everything else (data path, template, LoRA targets and exclusions, 4-bit loading,
collator, max_length, image cap) is the recipe's own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from local_models import build_once, cache_root, smollm2_path
from recipes.architectures import (
    ARCHITECTURES,
    TINY_CLIP_IMAGE_SIZE,
    TINY_IDEFICS3_IMAGE_SIZE,
    TINY_MLLAMA_TILE,
    TINY_ONEVISION_IMAGE_SIZE,
    Architecture,
    ArchitectureError,
    architecture,
    images_only_processor,
    model_config,
)
from recipes.config import Recipe

TINY_STEPS = 2
TINY_EXAMPLES = 4


def _tiny_processor(arch: Architecture, tokenizer, template: str):
    """The architecture's processor class around a PIL image processor at the tiny model's image size."""
    import transformers

    if arch.model_type == "qwen2_5_vl":
        return images_only_processor(arch.processor_class)(
            image_processor=transformers.Qwen2VLImageProcessorPil(), tokenizer=tokenizer, chat_template=template)
    if arch.model_type == "llava":
        size = TINY_CLIP_IMAGE_SIZE
        image_processor = transformers.CLIPImageProcessorPil(size={"shortest_edge": size},
                                                             crop_size={"height": size, "width": size})
        return transformers.LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                                           vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                           chat_template=template)
    if arch.model_type == "idefics3":
        size = TINY_IDEFICS3_IMAGE_SIZE
        image_processor = transformers.Idefics3ImageProcessorPil(size={"longest_edge": 2 * size},
                                                                 max_image_size={"longest_edge": size})
        return transformers.Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                              image_seq_len=(size // 14) ** 2 // 4, chat_template=template)
    if arch.model_type == "mllama":
        image_processor = transformers.MllamaImageProcessorPil(
            size={"height": TINY_MLLAMA_TILE, "width": TINY_MLLAMA_TILE}, max_image_tiles=4)
        return transformers.MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
    if arch.model_type == "llava_onevision":
        size = TINY_ONEVISION_IMAGE_SIZE
        image_processor = transformers.LlavaOnevisionImageProcessorPil(
            size={"height": size, "width": size}, image_grid_pinpoints=[[size, size], [size, 2 * size], [2 * size, size]])
        return images_only_processor(arch.processor_class)(
            image_processor=image_processor, tokenizer=tokenizer, num_image_tokens=(size // 14) ** 2,
            vision_feature_select_strategy="full", chat_template=template)
    raise ArchitectureError(f"{arch.model_type}: --tiny has no processor recipe for it")


def _fingerprint(arch: Architecture) -> str:
    """Changes whenever what the tiny checkpoint is built from changes (template, tokens, this module)."""
    digest = hashlib.sha256(arch.chat_template().encode())
    digest.update("\n".join(arch.special_tokens).encode())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:10]


def tiny_model_path(model_type: str) -> Path:
    """A small random checkpoint of the registered architecture ``model_type`` (built once, then cached)."""
    arch = architecture(model_type)
    if arch.tiny_config is None or arch.template is None:
        raise ArchitectureError(f"{model_type}: the registry has no tiny configuration for it; "
                                f"--tiny supports {', '.join(t for t, a in ARCHITECTURES.items() if a.tiny_config)}")

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
        tokenizer.add_special_tokens({"additional_special_tokens": list(arch.special_tokens)})
        ids = {token: tokenizer.convert_tokens_to_ids(token) for token in arch.special_tokens}
        ids.update(vocab=len(tokenizer), bos=tokenizer.bos_token_id, eos=tokenizer.eos_token_id, pad=tokenizer.pad_token_id)
        processor = _tiny_processor(arch, tokenizer, arch.chat_template())
        torch.manual_seed(0)
        model = AutoModelForImageTextToText.from_config(arch.tiny_config(ids))
        turn_end = tokenizer.convert_tokens_to_ids(arch.turn_end) if arch.turn_end else tokenizer.eos_token_id
        model.generation_config.eos_token_id = turn_end
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)

    return build_once(cache_root() / "models" / f"tiny-{model_type}-{_fingerprint(arch)}", build)


def tiny_overrides(recipe: Recipe) -> dict[str, Any]:
    """The overrides that turn ``recipe`` into its ``--tiny`` run (see the module docstring)."""
    import torch

    model_type = model_config(recipe.model.model_name_or_path, recipe.model.model_revision).model_type
    overrides: dict[str, Any] = {
        "model.model_name_or_path": str(tiny_model_path(model_type)),
        "model.model_revision": "main",
        "data.max_train_samples": TINY_EXAMPLES,
        "training.max_steps": TINY_STEPS,
        "training.per_device_train_batch_size": 2,
        "training.gradient_accumulation_steps": 1,
        "training.save_strategy": "no",
        "training.logging_steps": 1,
        "training.output_dir": f"{recipe.training.output_dir}-tiny",
    }
    if not torch.cuda.is_available():
        overrides.update({"training.optim": "adamw_torch", "model.dtype": "float32"})
    return overrides
