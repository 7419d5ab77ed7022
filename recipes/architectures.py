"""Which base models a recipe may name, and a check of LoRA target modules without loading any weights.

A model's config comes from its local directory, from the table below (public base models, so recipes are
checkable offline), or from the Hub. The model is then instantiated on the ``meta`` device (no memory, no
weights) to list its module names, against which ``lora.target_modules`` / ``exclude_modules`` are checked.

The table's dimensions are those of the models' published ``config.json`` files, written down from memory of
those files because the Hub is unreachable here: they fix layer *names* (what LoRA targets), and small slips
in sizes would not change the check.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from local_models import resolve_model
from recipes.config import LoraSettings, RecipeError

SUPPORTED_MODEL_TYPES = ("llava", "qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm")


def _qwen2_5_vl(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, vocab: int, tie: bool):
    def build():
        from transformers import Qwen2_5_VLConfig

        return Qwen2_5_VLConfig(
            text_config=dict(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                             num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                             tie_word_embeddings=tie, max_position_embeddings=128000, rope_theta=1000000.0),
            vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=hidden,
                               patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                               fullatt_block_indexes=[7, 15, 23, 31], hidden_act="silu"),
            image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
            tie_word_embeddings=tie,
        )

    return build


def _llava_1_5(hidden: int, intermediate: int, layers: int, heads: int):
    def build():
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

        return LlavaConfig(
            vision_config=CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                           num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768),
            text_config=LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                                    num_attention_heads=heads, num_key_value_heads=heads, vocab_size=32064,
                                    max_position_embeddings=4096),
            image_token_index=32000, vision_feature_layer=-2, vision_feature_select_strategy="default",
            projector_hidden_act="gelu",
        )

    return build


def _idefics3_8b():
    from transformers import Idefics3Config

    return Idefics3Config(
        vision_config=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                           image_size=364, patch_size=14),
        text_config=dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128259, rope_theta=500000.0,
                         max_position_embeddings=10240),
        scale_factor=2, image_token_id=128257,
    )


KNOWN_CONFIGS: dict[str, Callable] = {
    "Qwen/Qwen2.5-VL-7B-Instruct": _qwen2_5_vl(3584, 18944, 28, 28, 4, 152064, False),
    "Qwen/Qwen2.5-VL-3B-Instruct": _qwen2_5_vl(2048, 11008, 36, 16, 2, 151936, True),
    "llava-hf/llava-1.5-7b-hf": _llava_1_5(4096, 11008, 32, 32),
    "HuggingFaceM4/Idefics3-8B-Llama3": _idefics3_8b,
}


def model_config(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False):
    """The transformers config of a base model: local directory, the table above, or the Hub."""
    from transformers import AutoConfig

    resolved = resolve_model(name_or_path)
    if Path(resolved).is_dir():
        return AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    if resolved in KNOWN_CONFIGS and revision is None:
        return KNOWN_CONFIGS[resolved]()
    try:
        return AutoConfig.from_pretrained(resolved, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        known = ", ".join(sorted(KNOWN_CONFIGS))
        raise RecipeError(f"model.name_or_path={name_or_path!r}: cannot read its config ({error}). Use a local "
                          f"model directory, the alias 'tiny-llava', or a Hub id reachable from here; offline-known "
                          f"ids: {known}") from error


def check_architecture(config, name_or_path: str) -> None:
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise RecipeError(f"model.name_or_path={name_or_path!r} is a {model_type!r} model; recipes support the "
                          f"vision-language architectures {', '.join(SUPPORTED_MODEL_TYPES)}")


def check_vision_attention(mode: str, config, name_or_path: str) -> None:
    from recipes.vision_attention import GROUPED, SUPPORTED_MODEL_TYPES

    if mode == GROUPED and getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        raise RecipeError(f"model.vision_attention=grouped: {name_or_path!r} is a {config.model_type!r} model; "
                          f"grouped vision attention supports {', '.join(SUPPORTED_MODEL_TYPES)}; use per_chunk")


_MODULE_NAMES: dict[str, tuple[str, ...]] = {}


def module_names(config) -> tuple[str, ...]:
    """Every module name of the architecture, from an instantiation on the meta device (no weights)."""
    import torch
    from transformers import AutoModelForImageTextToText

    key = config.to_json_string(use_diff=False)
    if key not in _MODULE_NAMES:
        with torch.device("meta"):
            model = AutoModelForImageTextToText.from_config(config)
        _MODULE_NAMES[key] = tuple(name for name, _ in model.named_modules() if name)
    return _MODULE_NAMES[key]


def check_target_modules(lora: LoraSettings, names: tuple[str, ...], name_or_path: str) -> list[str]:
    """The modules LoRA would wrap; raises `RecipeError` naming each target that matches nothing."""
    excluded = re.compile(lora.exclude_modules) if lora.exclude_modules else None
    candidates = [name for name in names if excluded is None or not excluded.fullmatch(name)]
    wrapped: list[str] = []
    for target in lora.target_modules:
        hits = [name for name in candidates if name == target or name.endswith(f".{target}")]
        if not hits:
            leaves = sorted({name.rsplit(".", 1)[-1] for name in candidates if re.search(r"(proj|fc\d|qkv|dense)$", name)})
            raise RecipeError(f"lora.target_modules: {target!r} is not a module of {name_or_path!r}"
                              f"{' outside exclude_modules' if excluded else ''}; linear layers there: "
                              f"{', '.join(leaves)}")
        wrapped.extend(hits)
    return wrapped
