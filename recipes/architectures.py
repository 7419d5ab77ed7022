"""One registry of the vision-language architectures the toolkit trains and scores, and what differs between them.

`ARCHITECTURES` maps a transformers ``model_type`` to an `Architecture`: the processor class and its image
processor, the image placeholder token and the special tokens the tokenizer must carry, the end-of-turn token
and the answer quirks of the chat template, the LoRA targets of the language model and the vision modules
LoRA leaves alone, the real checkpoint's chat template (``recipes/templates/``) and a small configuration of
the same classes for ``--tiny``. Recipes (`recipes.train`, `recipes.model`), the judge's loader
(`modelcalls.hf_loading.load_model` through `load_processor`) and `recipes.tiny` all read it.

A model's full config comes from its local directory, from `KNOWN_CONFIGS` (public base models, so recipes
are checkable offline), or from the Hub; the model is then instantiated on the ``meta`` device (no memory, no
weights) to list its module names, against which the LoRA targets are checked. The table's dimensions are
those of the models' published ``config.json`` files, written down from memory because the Hub is
unreachable here: they fix layer *names* (what LoRA targets), and small slips in sizes would not change the
check.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_models import resolve_model

TEMPLATES = Path(__file__).resolve().parent / "templates"
LANGUAGE_MODEL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ArchitectureError(ValueError):
    """A model is not one the registry knows, or its processor cannot be loaded here (one line, with the fix)."""


@dataclass(frozen=True)
class Architecture:
    model_type: str
    processor_class: str  # transformers class; loaded without its video processor where torchvision is absent
    image_token: str  # the placeholder the processor expands into one token per image patch group
    special_tokens: tuple[str, ...]  # tokens the tokenizer must carry (the tiny tokenizers add them)
    turn_end: str | None  # the token that ends the assistant's turn (None: the template ends it with a space)
    answer_prefix: str  # what the template writes between the generation prompt and the answer (" ": a space)
    vision_modules: str  # regex over full module names: the vision tower and projector, left out of LoRA
    template: str | None  # file in recipes/templates/: the real checkpoint's chat template (None: not shipped)
    tiny_config: Callable[[dict[str, int]], Any] | None  # token ids (+ vocab, bos, eos, pad) -> a small config
    has_video_processor: bool = False  # its processor also holds a video processor (which needs torchvision)
    images_per_prompt: bool = False  # its processor takes one list of images per prompt, not one flat list
    lora_targets: tuple[str, ...] = LANGUAGE_MODEL_LINEAR

    def chat_template(self) -> str:
        if self.template is None:
            raise ArchitectureError(f"{self.model_type}: no chat template is shipped in {TEMPLATES}")
        return (TEMPLATES / self.template).read_text(encoding="utf-8")


def _tiny_text(ids: dict[str, int], **extra) -> dict[str, Any]:
    return dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                vocab_size=ids["vocab"], bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"],
                max_position_embeddings=4096, **extra)


def _tiny_qwen2_5_vl(ids: dict[str, int]):
    from transformers import Qwen2_5_VLConfig

    text = _tiny_text(ids, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                                     "mrope_section": [2, 3, 3]})
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[1],
                           hidden_act="silu"),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )


TINY_CLIP_IMAGE_SIZE = 56  # LLaVA-1.5 tower: 336 px at 14 px patches; tiny: 56 px, 16 patches
TINY_IDEFICS3_IMAGE_SIZE = 56  # Idefics3 tiles: 364 px; tiny: 56 px, 16 patches, 4 tokens after the 2x2 shuffle


def _tiny_llava(ids: dict[str, int]):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    return LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                       image_size=TINY_CLIP_IMAGE_SIZE, patch_size=14, projection_dim=32),
        text_config=LlamaConfig(**_tiny_text(ids)),
        image_token_index=ids["<image>"], vision_feature_layer=-2, vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )


def _tiny_idefics3(ids: dict[str, int]):
    from transformers import Idefics3Config

    return Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=TINY_IDEFICS3_IMAGE_SIZE, patch_size=14),
        text_config=dict(model_type="llama", **_tiny_text(ids)),
        scale_factor=2, image_token_id=ids["<image>"],
    )


TINY_MLLAMA_TILE = 56  # Llama 3.2 Vision tiles: 560 px; tiny: 56 px, up to 4 tiles
TINY_ONEVISION_IMAGE_SIZE = 56  # LLaVA-OneVision SigLIP: 384 px; tiny: 56 px, 16 patches


def mllama_aspect_ratios(max_tiles: int) -> list[list[int]]:
    """The tile layouts Mllama's image processor produces for ``max_tiles`` (its config must list the same)."""
    return [[width, height] for width in range(1, max_tiles + 1) for height in range(1, max_tiles + 1)
            if width * height <= max_tiles]


def _tiny_mllama(ids: dict[str, int]):
    from transformers import MllamaConfig

    return MllamaConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_global_layers=1, attention_heads=2,
                           intermediate_size=64, vision_output_dim=64, image_size=TINY_MLLAMA_TILE, patch_size=14,
                           max_num_tiles=4, intermediate_layers_indices=[0], supported_aspect_ratios=mllama_aspect_ratios(4)),
        text_config=dict(cross_attention_layers=[1], **_tiny_text(ids)),
        image_token_index=ids["<|image|>"],
    )


def _tiny_llava_onevision(ids: dict[str, int]):
    from transformers import LlavaOnevisionConfig

    size = TINY_ONEVISION_IMAGE_SIZE
    return LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=size, patch_size=14),
        text_config=dict(model_type="qwen2", **_tiny_text(ids)),
        image_token_index=ids["<image>"], video_token_index=ids["<video>"], vision_feature_select_strategy="full",
        vision_feature_layer=-1, image_grid_pinpoints=[[size, size], [size, 2 * size], [2 * size, size]],
    )


_QWEN_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
_IDEFICS3_TOKENS = ("<|begin_of_text|>", "<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>",
                    *(f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)))

ARCHITECTURES: dict[str, Architecture] = {
    "qwen2_5_vl": Architecture(
        "qwen2_5_vl", "Qwen2_5_VLProcessor", image_token="<|image_pad|>", special_tokens=_QWEN_TOKENS,
        turn_end="<|im_end|>", answer_prefix="", vision_modules=r".*visual.*", template="qwen2_5_vl.jinja",
        tiny_config=_tiny_qwen2_5_vl, has_video_processor=True),
    "qwen2_vl": Architecture(
        "qwen2_vl", "Qwen2VLProcessor", image_token="<|image_pad|>", special_tokens=_QWEN_TOKENS,
        turn_end="<|im_end|>", answer_prefix="", vision_modules=r".*visual.*", template=None, tiny_config=None,
        has_video_processor=True),
    "llava": Architecture(
        "llava", "LlavaProcessor", image_token="<image>", special_tokens=("<image>",), turn_end=None,
        answer_prefix=" ", vision_modules=r".*(vision_tower|multi_modal_projector).*", template="llava_1_5.jinja",
        tiny_config=_tiny_llava),
    "idefics3": Architecture(
        "idefics3", "Idefics3Processor", image_token="<image>", special_tokens=_IDEFICS3_TOKENS,
        turn_end="<end_of_utterance>", answer_prefix=" ", vision_modules=r".*(vision_model|connector).*",
        template="idefics3.jinja", tiny_config=_tiny_idefics3),
    # The guard models the eval ships formats for (eval/judges/llama_guard.py, eval/judges/llavaguard.py).
    "mllama": Architecture(
        "mllama", "MllamaProcessor", image_token="<|image|>",
        special_tokens=("<|image|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        turn_end="<|eot_id|>", answer_prefix="", vision_modules=r".*(vision_model|multi_modal_projector).*",
        template="llama_guard_3_vision.jinja", tiny_config=_tiny_mllama, images_per_prompt=True),
    "llava_onevision": Architecture(
        "llava_onevision", "LlavaOnevisionProcessor", image_token="<image>",
        special_tokens=("<|im_start|>", "<|im_end|>", "<image>", "<video>"), turn_end="<|im_end|>", answer_prefix="",
        vision_modules=r".*(vision_tower|multi_modal_projector).*", template="llava_onevision.jinja",
        tiny_config=_tiny_llava_onevision, has_video_processor=True),
}


def architecture(model_type: str | None, name_or_path: str = "") -> Architecture:
    """The registry entry of ``model_type``; `ArchitectureError` naming the model and the known types otherwise."""
    if model_type not in ARCHITECTURES:
        raise ArchitectureError(f"{name_or_path or 'the model'} is a {model_type!r} model; the registered "
                                f"vision-language architectures are {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[model_type]


# ------------------------------------------------------------------------------------------- processors


def torchvision_available() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def torchvision_install_hint() -> str:
    """The install command for the torchvision that matches the installed torch (torchvision 0.N+15 <-> torch 2.N)."""
    import torch

    major, minor = (int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    spec = f"torchvision==0.{minor + 15}.*" if major == 2 else "torchvision"
    return f"pip install '{spec}' (the release matching torch {torch.__version__}; scripts/setup.sh does this on GPU machines)"


_IMAGES_ONLY: dict[str, type] = {}


def images_only_processor(processor_class: str) -> type:
    """``processor_class`` without its video processor: the same image and text processing, for machines without
    torchvision (transformers' video processors need it, its PIL image processors do not)."""
    if processor_class not in _IMAGES_ONLY:
        import transformers

        base = getattr(transformers, processor_class)

        @classmethod
        def get_attributes(cls):  # the sub-processors it loads, checks and saves
            return [name for name in base.get_attributes() if name != "video_processor"]

        _IMAGES_ONLY[processor_class] = type(f"{processor_class}ImagesOnly", (base,), {"get_attributes": get_attributes})
    return _IMAGES_ONLY[processor_class]


def load_processor(path: str, model_type: str | None, *, revision: str | None = None, trust_remote_code: bool = False):
    """The processor of the model at ``path`` (a directory or Hub id). Where torchvision is absent, transformers
    picks the PIL image processors by itself; a registered architecture whose processor also holds a video
    processor is loaded without it. Any other processor that needs torchvision where it is missing is an
    `ArchitectureError`: one line naming the package and the command that installs it."""
    from transformers import AutoProcessor

    pin = {"revision": revision} if revision else {}
    entry = ARCHITECTURES.get(model_type)
    if entry is not None and entry.has_video_processor and not torchvision_available():
        return images_only_processor(entry.processor_class).from_pretrained(path, **pin)
    try:
        return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code, **pin)
    except (ImportError, ValueError, OSError) as error:
        if torchvision_available() or "torchvision" not in str(error).lower():
            raise
        cause = str(error).strip().splitlines()[0].rstrip(".")
        raise ArchitectureError(f"{path}: its processor needs torchvision, which is not installed here ({cause}); "
                                f"install it: {torchvision_install_hint()}") from None


# ------------------------------------------------------------------------------------ configs and modules


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
    if resolved in KNOWN_CONFIGS and revision in (None, "main"):
        return KNOWN_CONFIGS[resolved]()
    try:
        return AutoConfig.from_pretrained(resolved, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        known = ", ".join(sorted(KNOWN_CONFIGS))
        raise ArchitectureError(f"{name_or_path!r}: cannot read its config ({error}). Use a local model directory, "
                                f"the alias 'tiny-llava', or a Hub id reachable from here; offline-known ids: "
                                f"{known}") from error


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


def lora_modules(targets: list[str] | str, excluded: str | None, names: tuple[str, ...], name_or_path: str) -> list[str]:
    """The modules LoRA would wrap (peft semantics: a list of name suffixes, or a string that is a regex over full
    names); `ArchitectureError` naming each target that matches nothing outside ``excluded``."""
    exclusion = re.compile(excluded) if excluded else None
    candidates = [name for name in names if exclusion is None or not exclusion.fullmatch(name)]
    if isinstance(targets, str):
        wrapped = [name for name in candidates if re.fullmatch(targets, name)]
        if not wrapped:
            raise ArchitectureError(f"lora_target_modules: the pattern {targets!r} matches no module of {name_or_path!r}")
        return wrapped
    wrapped: list[str] = []
    for target in targets:
        hits = [name for name in candidates if name == target or name.endswith(f".{target}")]
        if not hits:
            leaves = sorted({name.rsplit(".", 1)[-1] for name in candidates if re.search(r"(proj|fc\d|qkv|dense)$", name)})
            raise ArchitectureError(f"lora_target_modules: {target!r} is not a module of {name_or_path!r}"
                                    f"{' outside the vision modules' if exclusion else ''}; linear layers there: "
                                    f"{', '.join(leaves)}")
        wrapped.extend(hits)
    return wrapped
