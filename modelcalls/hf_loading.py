"""Loading a local (V)LM once: base model (Hub id at a pinned revision, local folder or offline alias),
optional LoRA adapter and 4-bit, its processor and left-padding tokenizer, and the fingerprint of what was
loaded (`modelcalls.hf_fingerprint`). ``shared_model`` keeps one copy per model, so a backend and a judge
naming the same model share it."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcalls.hf_fingerprint import model_fingerprint
from modelcalls.judge_metadata import read_adapter_metadata, recorded_base_model


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def quiet_bitsandbytes_kernel_notice() -> None:
    """Drop one import-time warning of bitsandbytes, which peft and trl import whether 4-bit is used or not: on CPUs
    with AVX512-BF16 it tries to fetch an optional CPU 4-bit kernel from the Hub and, failing, logs "Failed to load
    CPU gemm_4bit_forward from kernels-community ... pip install kernels" on every start. The kernel only speeds up
    4-bit matmuls on the CPU; bitsandbytes falls back to its own code. Every other bitsandbytes message is kept."""
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(existing, _DropMessage) for existing in logger.filters):
        logger.addFilter(_DropMessage("Failed to load CPU gemm_4bit_forward"))


quiet_bitsandbytes_kernel_notice()


@dataclass
class LoadedModel:
    """A model ready to run: weights (+ LoRA adapter), its processor (VLMs) and tokenizer (left padding),
    and ``fingerprint``, what identifies its outputs (model revision or weights fingerprint, adapter hash)."""

    model: Any
    processor: Any  # the multimodal processor of a VLM, else the tokenizer
    tokenizer: Any
    is_multimodal: bool
    base_model: str
    adapter: str | None = None
    adapter_metadata: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one forward/generate at a time


def resolve_pinned(name: str, revision: str | None) -> tuple[str, dict[str, Any]]:
    """The path to load ``name`` from and the ``from_pretrained`` keywords that pin ``revision``. A revision
    pins a Hub id only: given with a local folder or an offline alias it is an error, never ignored."""
    from local_models import resolve_model

    path = resolve_model(name)
    if revision is None:
        return path, {}
    if path != name or Path(path).exists():
        raise ValueError(f"revision {revision!r} given for {name!r}, which is a local model ({path}); a revision "
                         "pins a Hub id only: drop it (the local weights are fingerprinted instead)")
    return path, {"revision": revision}


def load_model(
    name: str | None,
    adapter: str | Path | None = None,
    *,
    load_in_4bit: bool = False,
    dtype: str = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> LoadedModel:
    """Load a (V)LM: Hub id (at ``revision`` when given), local dir or offline alias (``smollm2``,
    ``tiny-llava``), optionally in 4-bit, optionally with a LoRA adapter; the tokenizer pads on the left. A
    config with a ``vision_config`` loads ``AutoModelForImageTextToText`` + its processor (through
    `recipes.architectures.load_processor`), anything else ``AutoModelForCausalLM``. Without ``name`` the
    base model is the one the adapter's ``judge_metadata.json`` records."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    if name is None:
        if adapter is None:
            raise ValueError("load_model needs a base model name or an adapter that records one")
        name = recorded_base_model(adapter)
    path, pin = resolve_pinned(name, revision)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **pin)
    multimodal = getattr(config, "vision_config", None) is not None
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, **pin}
    if dtype != "auto":
        kwargs["dtype"] = getattr(torch, dtype)
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
        kwargs["device_map"] = device or "auto"
    model_class = AutoModelForImageTextToText if multimodal else AutoModelForCausalLM
    model = model_class.from_pretrained(path, **kwargs)
    if not load_in_4bit:
        model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if multimodal:  # the architecture registry knows each VLM's processor (and loads it without torchvision)
        from recipes.architectures import load_processor

        processor = load_processor(path, config.model_type, trust_remote_code=trust_remote_code, **pin)
    else:
        processor = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **pin)
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    metadata = read_adapter_metadata(adapter) if adapter else {}
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return LoadedModel(
        model=model, processor=processor, tokenizer=tokenizer, is_multimodal=multimodal, base_model=name,
        adapter=str(adapter) if adapter else None, adapter_metadata=metadata,
        fingerprint=model_fingerprint(name, path, config, adapter, revision),
    )


_LOADED: dict[tuple, LoadedModel] = {}
_LOADING = threading.Lock()


def shared_model(name: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False,
                 revision: str | None = None) -> LoadedModel:
    """Load a model once per (path, device, dtype): two roles (or a backend and a judge) naming the same
    model share one copy. No adapter: an adapter-wrapped model is loaded with `load_model`."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    from local_models import resolve_model

    key = (resolve_model(name), device, dtype, trust_remote_code, revision)
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = load_model(name, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
                                      revision=revision)
        return _LOADED[key]


