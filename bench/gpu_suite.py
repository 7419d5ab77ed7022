"""The prepared GPU suite: QLoRA judge training, judge scoring and CUDA correctness checks, in one run.

    python bench/gpu_suite.py --out DIR                  # on a CUDA machine; budget 7 minutes by default
    python bench/gpu_suite.py --out DIR --smoke          # the same code paths on the CPU, tiny dimensions

Writes ``DIR/results.json`` and ``DIR/results.md`` after every measurement, so a run stopped by a timeout
still leaves what finished. Sections, in this order: training, correctness and scoring on the first of
``--sizes`` (default Qwen2.5-VL-3B), then training (recipe and baseline) on the next size (7B). Levers stop
once less than ``--reserve-s`` of ``--budget-s`` is left (correctness and scoring always run) and a size
is skipped once the budget is spent; each skip is a row saying why.

1. **Training**: random-init real architectures (dimensions
   from `recipes.architectures.KNOWN_CONFIGS`, no weights needed), trained on the repository's sample
   release (real photos, the shared ones at judge resolution, through the recipe's own data path:
   `recipes.train.prepare` -> `to_sft_dataset` -> trl's collator). Rows: ``recipe`` (the recipe YAML as
   shipped, trl ``SFTTrainer``), ``baseline`` (the plain loop of ../shared/probes/qlora_baseline_probe.py:
   bnb NF4 + LoRA r=16 on all linear layers, torch AdamW, sdpa, gradient checkpointing; same loaded
   model, same data, same effective batch), then one row per lever (recipe + one change, see `LEVERS`)
   with its predicted and measured effect.
2. **Correctness** (pass/fail lines): the 4-bit recipe trains 20 steps through `recipes.train.train` and
   its loss falls; the adapter saves, reloads and changes the output; ``merge`` writes weights that load
   and agree with base + adapter.
3. **Scoring**: the fast single-forward path of `eval.judges.hf.HFJudge` versus per-item ``generate()``
   (how benchmarks' reference scripts score) versus batched ``generate()``, same loaded judge (the trained
   adapter when section 2 ran) and items: items/s, verdict agreement, and the check that the fast path's
   p_unsafe equals generate's first-step probability within 1e-3.

How FLOPs are counted (MFU): matmul FLOPs of the linear layers only, 2 per parameter per token forward,
2 more backward for input gradients (LoRA: frozen weights get no weight gradients), 2 more for the
recomputation under gradient checkpointing: (4 + 2*checkpointing) x params x tokens. Language-model
params (embeddings excluded, the LM head included) count per real (unpadded) token, vision-tower params
per image patch; a vision tower with no LoRA and no gradient flowing into it counts forward only (2x).
Attention score FLOPs are left out (under 10% at these lengths). MFU = those FLOPs / time / the bf16
matmul rate measured at the start of the same run (8192^3 products), so it is against this machine.

On the lent machine (torch, transformers, peft, accelerate present; trl, datasets, bitsandbytes absent),
carry the missing wheels. Here, in the repository root:

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \\
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \\
        trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 bitsandbytes==0.50.2 \\
        pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \\
        transformers==5.24.0 peft==0.21.2
    # transformers and peft as CI tests them (the machine's own may be older). bitsandbytes' wheel (43 MB)
    # holds one library per CUDA/ROCm version; with the working tree (33 MB) it would pass the 64 MiB that
    # travels. Keep its CUDA 13 libraries only (the lent torch is a cu130 build): 7.4 MB, 26 MB in all.
    zip -q -d .whl/bitsandbytes-0.50.2-*.whl 'bitsandbytes/libbitsandbytes_cuda1[12]*' 'bitsandbytes/libbitsandbytes_rocm*'

and start the command there with (``carry: [".whl"]``):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \\
        .whl/*.whl && export PYTHONPATH=/tmp/site || exit; PYTHONUNBUFFERED=1 python3 bench/gpu_suite.py --out $OUT

Nothing about that machine is assumed by the code: without CUDA every part that needs it is reported as
``skipped: needs CUDA``; without bitsandbytes, 4-bit as ``skipped: needs bitsandbytes``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HUB_IDS = {"3b": "Qwen/Qwen2.5-VL-3B-Instruct", "7b": "Qwen/Qwen2.5-VL-7B-Instruct"}
RECIPES = {"3b": REPO / "recipes" / "qwen2_5_vl_3b" / "qlora.yaml", "7b": REPO / "recipes" / "qwen2_5_vl_7b" / "qlora.yaml"}
SAMPLE_RELEASE = REPO / "sample_release"
# What the probe measured on the 3B (../shared/probes/qlora_baseline_probe.py, transformers 5.17, H200).
PROBE_3B = "probe, 3B: 613 / 1,159 / 1,548 tok/s at batch 1 / 2 / 4; 13 / 22.5 / 41.6 GB; OOM at 8"
P_UNSAFE_TOLERANCE = 1e-3
REQUIRED = ("transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "PIL")


# ------------------------------------------------------------------------------------------- the report


class Report:
    """Tables and pass/fail lines, rewritten to ``results.json`` and ``results.md`` after every addition."""

    def __init__(self, out: Path, header: dict[str, Any]):
        self.out = out
        self.header = header
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.checks: list[dict[str, str]] = []
        self.machine: Machine | None = None  # lets a failed row free device memory
        out.mkdir(parents=True, exist_ok=True)
        self.flush()

    def row(self, table: str, row: dict[str, Any]) -> None:
        self.tables.setdefault(table, []).append(row)
        print(f"[{table}] " + ", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        self.flush()

    def check(self, name: str, status: str, detail: str) -> None:
        """``status``: pass | fail | skipped | error."""
        self.checks.append({"check": name, "status": status, "detail": detail})
        print(f"[check] {status.upper()}: {name}: {detail}", flush=True)
        self.flush()

    def flush(self) -> None:
        data = {"header": self.header, "tables": self.tables, "checks": self.checks}
        _atomic_write(self.out / "results.json", json.dumps(data, indent=1, default=str))
        _atomic_write(self.out / "results.md", self.markdown())

    def markdown(self) -> str:
        lines = [f"{key}: {value}" for key, value in self.header.items()]
        for name, rows in self.tables.items():
            columns = list(dict.fromkeys(key for row in rows for key in row))
            lines += ["", f"### {name}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows]
        if self.checks:
            lines += ["", "### checks", ""]
            lines += [f"- {c['status'].upper()}: {c['check']}: {c['detail']}" for c in self.checks]
        return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value).replace("|", "/")


class Clock:
    def __init__(self, budget_s: float):
        self.start = time.perf_counter()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()


# ------------------------------------------------------------------------------------------- the machine


@dataclass
class Machine:
    smoke: bool
    cuda: bool
    bnb: bool
    peak_flops: float | None = None  # measured bf16 matmul rate, FLOP/s

    @property
    def device(self) -> str:
        return "cuda" if self.cuda else "cpu"

    @property
    def four_bit(self) -> bool:
        return self.cuda and self.bnb

    def why_no_4bit(self) -> str:
        return "skipped: needs CUDA" if not self.cuda else "skipped: needs bitsandbytes"


def detect_machine(smoke: bool) -> Machine:
    import importlib.util

    import torch

    cuda = torch.cuda.is_available() and not smoke
    return Machine(smoke=smoke, cuda=cuda, bnb=importlib.util.find_spec("bitsandbytes") is not None)


def library_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "pyarrow",
                 "fsspec", "torchvision"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def measure_bf16_matmul(machine: Machine) -> float | None:
    """The bf16 matmul ceiling of this device (FLOP/s): 10 timed 8192^3 products after 3 warm-ups."""
    if not machine.cuda:
        return None
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn_like(a)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    rate = 10 * 2 * 8192**3 / (time.perf_counter() - start)
    del a, b
    torch.cuda.empty_cache()
    return rate


def synchronize(machine: Machine) -> None:
    if machine.cuda:
        import torch

        torch.cuda.synchronize()


def reset_peak(machine: Machine) -> None:
    gc.collect()
    if machine.cuda:
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(machine: Machine) -> float | None:
    if not machine.cuda:
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 2**30


# ------------------------------------------------------------------------ random-init checkpoints


# The published Qwen2.5-VL chat template (image and text parts; videos are not used by the judge).
QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIAL_TOKENS = (  # ids 151643.. in this order, as in Qwen2's vocabulary
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)
FIRST_SPECIAL_ID = 151643


def judge_tokenizer(corpus: list[str], vocab_size: int, first_special_id: int | None = FIRST_SPECIAL_ID):
    """A byte-level BPE trained on the judge texts, with Qwen2's special tokens at Qwen2's ids (or, with
    ``first_special_id=None``, right after the BPE vocabulary: the smoke run's small embedding).

    Qwen's own tokenizer files are not on the lent machine (no Hub); `--tokenizer DIR` uses them when a
    copy is at hand. This one tokenizes English text into somewhat more tokens than Qwen's 151k-entry
    vocabulary would; images (most of a judge's sequence) are unaffected.
    """
    import transformers
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    trained.train_from_iterator(corpus, trainer)
    vocab = trained.get_vocab()
    merges = json.loads(trained.to_str())["model"]["merges"]
    for index in range(len(vocab), first_special_id or 0):  # unreachable fillers: special tokens at Qwen's ids
        vocab[f"<|unused_{index}|>"] = index
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" "))
                                                            for m in merges]))
    tokenizer.pre_tokenizer = trained.pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in QWEN_SPECIAL_TOKENS])
    cls = getattr(transformers, "Qwen2TokenizerFast", None) or transformers.Qwen2Tokenizer
    return cls(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
               unk_token=None, bos_token=None)


def judge_corpus(release: Path) -> list[str]:
    """The texts a judge reads: every pair's query, twin and responses, in the judge's prompt format."""
    from judging.format import QUERY_INSTRUCTION, RESPONSE_INSTRUCTION, SYSTEM_PROMPT
    from judging.sources import get_source

    source = get_source("rms", release=str(release))
    texts = [SYSTEM_PROMPT, "safe", "unsafe"]
    for split in ("train", "test"):
        for task in ("query", "response"):
            for example in source.examples(split, task):
                texts.append(QUERY_INSTRUCTION.format(text=example.text) if task == "query" else
                             RESPONSE_INSTRUCTION.format(text=example.text, response=example.response))
    return texts


def qwen_processor(image_processor, tokenizer):
    """Qwen2.5-VL's processor with its video processor; where that cannot be built (transformers 5.x builds
    Qwen's video processor only with torchvision, absent on CPU test machines) an image-only one.

    The stock processor refuses to exist without a video processor. The judge never sends videos, so the
    fallback is the same processor minus the video part, registered with ``AutoProcessor`` (this process
    only) and saved under its own name.
    """
    from transformers import Qwen2_5_VLProcessor

    try:
        from transformers import Qwen2VLVideoProcessor

        return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                   video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_CHAT_TEMPLATE)
    except (ImportError, AttributeError, TypeError, ValueError):
        return _image_only_processor_class()(image_processor=image_processor, tokenizer=tokenizer,
                                             chat_template=QWEN_CHAT_TEMPLATE)


def _image_only_processor_class():
    from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token = getattr(tokenizer, "image_token", "<|image_pad|>")
            self.video_token = getattr(tokenizer, "video_token", "<|video_pad|>")
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            self.video_processor = None
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    AutoProcessor.register(Qwen2_5_VLConfig, ImageOnlyQwen2_5_VLProcessor, exist_ok=True)
    return ImageOnlyQwen2_5_VLProcessor


SPECIAL_ID_KEYS = {"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
                   "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}


def model_config(size: str, smoke: bool, tokenizer):
    """The Qwen2.5-VL config of ``size`` (3b / 7b) from the recipes' table; ``smoke``: the same architecture
    with tiny dimensions (2 text layers of width 128, 2 vision blocks of width 64, one of them full-attention)
    and the tokenizer's vocabulary size. The special tokens' ids must be the config's."""
    from recipes.architectures import model_config as recipe_model_config

    config = recipe_model_config(HUB_IDS[size])
    ids = {key: tokenizer.convert_tokens_to_ids(token) for key, token in SPECIAL_ID_KEYS.items()}
    if not smoke:
        wrong = {key: (value, getattr(config, key)) for key, value in ids.items() if value != getattr(config, key)}
        if wrong:
            raise ValueError(f"tokenizer ids (tokenizer, config) differ from {HUB_IDS[size]}'s: {wrong}")
        return config
    if smoke:
        from transformers import Qwen2_5_VLConfig

        text = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=64 * math.ceil(len(tokenizer) / 64), tie_word_embeddings=True,
                    rope_parameters={**(config.text_config.rope_parameters or {}), "mrope_section": [4, 6, 6]})
        vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=128,
                      fullatt_block_indexes=[1], window_size=config.vision_config.window_size)
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    return config


def write_checkpoint(size: str, target: Path, machine: Machine, *, release: Path, max_pixels: int,
                     tokenizer_dir: str | None) -> dict[str, Any]:
    """A random-init Qwen2.5-VL checkpoint + processor in ``target`` (what ``from_pretrained`` reads)."""
    import torch
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    try:
        from transformers import Qwen2VLImageProcessor
    except ImportError:  # pragma: no cover - older transformers
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    started = time.perf_counter()
    if tokenizer_dir:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        tokenizer = judge_tokenizer(judge_corpus(release), vocab_size=4000,
                                    first_special_id=None if machine.smoke else FIRST_SPECIAL_ID)
    config = model_config(size, machine.smoke, tokenizer)
    image_processor = Qwen2VLImageProcessor(max_pixels=max_pixels, min_pixels=min(3136, max_pixels))
    processor = qwen_processor(image_processor, tokenizer)
    dtype = torch.bfloat16 if machine.cuda else torch.float32
    torch.manual_seed(0)
    with torch.device(machine.device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    params = parameter_counts(model)
    model.save_pretrained(target)
    processor.save_pretrained(target)
    del model
    reset_peak(machine)
    return {**params, "write_s": time.perf_counter() - started, "processor": type(processor).__name__}


def parameter_counts(model) -> dict[str, int]:
    """Linear-layer parameters by part: ``lm`` (decoder layers + LM head), ``vision`` (the vision tower)."""
    import torch

    counts = {"lm": 0, "vision": 0}
    for name, module in model.named_modules():
        # bitsandbytes' Linear4bit is a torch Linear; peft's LoRA wrapper is not (its base_layer is counted)
        if isinstance(module, torch.nn.Linear) and "lora_" not in name:
            counts["vision" if "visual" in name else "lm"] += module.in_features * module.out_features
    return counts


# ------------------------------------------------------------------------------------------ training


@dataclass
class Lever:
    """One change to the shipped recipe, measured against it, with what the cost model predicts."""

    name: str
    what: str
    overrides: Callable[[Any], dict[str, Any]]  # the shipped recipe -> its overrides
    predict: Callable[[dict[str, Any]], float | None]  # recipe's measured row -> predicted tokens/s ratio


def _gc_off(recipe_row: dict[str, Any]) -> float:
    return 6 / 4  # no recomputation: (4 + 2) / 4 FLOPs per token, if compute-bound


def _no_prediction(recipe_row: dict[str, Any]) -> None:
    return None  # computed from the data by `predicted_ratio`


LEVERS: list[Lever] = [
    Lever("pixels_half", "image resolution cap halved (data.max_pixels)",
          lambda recipe: {"data.max_pixels": recipe.data.max_pixels // 2}, _no_prediction),
    Lever("group_by_length", "length-grouped batches (less padding)",
          lambda recipe: {"training.train_sampling_strategy": "group_by_length"}, _no_prediction),
    Lever("no_checkpointing", "gradient checkpointing off (memory allowing)",
          lambda recipe: {"training.activation_checkpointing": False}, _gc_off),
    Lever("checkpoint_half", "checkpoint every 2nd decoder layer only (memory allowing)",
          lambda recipe: {"training.activation_checkpointing_kwargs": {"every_n_layers": 2}}, lambda row: 6 / 5),
    Lever("fused_adamw", "torch fused AdamW instead of paged 8-bit AdamW",
          lambda recipe: {"training.optim": "adamw_torch_fused"}, lambda row: 1.0),
    Lever("workers_4", "4 dataloader workers (collation off the training loop)",
          lambda recipe: {"training.dataloader_num_workers": 4}, _no_prediction),
    Lever("grouped_vision_attention", "vision attention: one call per chunk length, not per image/window",
          lambda recipe: {"model.vision_attention": "grouped"}, lambda row: 1.05),
]


class BatchMeter:
    """Counts what each micro-batch fed to the model: real tokens, padded tokens, patches, samples, time."""

    def __init__(self, machine: Machine):
        self.machine = machine
        self.batches: list[dict[str, float]] = []

    def hook(self, module, args, kwargs):
        mask = kwargs.get("attention_mask")
        ids = kwargs.get("input_ids")
        pixels = kwargs.get("pixel_values")
        if ids is None:
            return
        self.batches.append({
            "time": time.perf_counter(),
            "tokens": float(mask.sum()) if mask is not None else float(ids.numel()),
            "padded": float(ids.numel()),
            "patches": float(pixels.shape[0]) if pixels is not None else 0.0,
            "samples": float(ids.shape[0]),
        })


@dataclass
class StepTimes:
    ends: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def training_row(meter: BatchMeter, times: StepTimes, warmup: int, machine: Machine, params: dict[str, int],
                 *, checkpointing: float, vision_trained: bool) -> dict[str, Any]:
    """Throughput over the optimizer steps after ``warmup``: from the end of the last warm-up step to the end.
    ``checkpointing``: the share of layers recomputed in the backward pass (0, 1/n or 1)."""
    start, end = times.ends[warmup - 1], times.ends[-1]
    seconds = end - start
    timed = [b for b in meter.batches if start < b["time"] <= end]
    tokens = sum(b["tokens"] for b in timed)
    patches = sum(b["patches"] for b in timed)
    factor = 4 + 2 * checkpointing
    flops = factor * params["lm"] * tokens + (factor if vision_trained else 2) * params["vision"] * patches
    padded = sum(b["padded"] for b in timed)
    row = {
        "steps": len(times.ends) - warmup,
        "tokens/s": tokens / seconds,
        "samples/s": sum(b["samples"] for b in timed) / seconds,
        "tokens/sample": tokens / max(1.0, sum(b["samples"] for b in timed)),
        "padding %": 100 * (padded - tokens) / padded if padded else None,
        "peak GiB": peak_gib(machine),
        "MFU %": 100 * flops / seconds / machine.peak_flops if machine.peak_flops else None,
        "loss first->last": (f"{times.losses[0]:.2f}->{times.losses[-1]:.2f}" if times.losses else None),
    }
    return row


def suite_recipe(size: str, checkpoint: Path, release: Path, out: Path, machine: Machine,
                 overrides: dict[str, Any] | None = None):
    """The shipped recipe of ``size`` on the random-init checkpoint and the release; on a CPU (smoke) the
    parts that need CUDA are replaced and the row says so."""
    from recipes.config import load_recipe

    base = {
        "model.model_name_or_path": str(checkpoint),
        "data.sources": [{"name": "rms", "split": "train", "options": {"release": str(release)}}],
        "training.output_dir": str(out),
        "training.save_steps": 1_000_000,
        "training.logging_steps": 1,
        "training.report_to": [],
    }
    if not machine.four_bit:
        base["model.load_in_4bit"] = False
    if not machine.cuda:
        base.update({"model.dtype": "float32", "training.bf16": False, "training.optim": "adamw_torch"})
    if machine.smoke:
        base.update({"training.per_device_train_batch_size": 2, "training.gradient_accumulation_steps": 2,
                     "data.max_pixels": 112 * 112, "data.max_train_samples": 8})
    merged = {**base, **(overrides or {})}
    if machine.smoke and merged.get("training.optim") in ("adamw_torch_fused", "paged_adamw_8bit"):
        merged["training.optim"] = "adamw_torch"
    return load_recipe(RECIPES[size], merged)


def recipe_deviations(machine: Machine) -> str:
    if machine.four_bit:
        return "as shipped"
    parts = ["4-bit off (" + machine.why_no_4bit().removeprefix("skipped: ") + ")"]
    if not machine.cuda:
        parts.append("fp32 + adamw_torch (CPU)")
    if machine.smoke:
        parts.append("smoke dims, batch 2x2, 112x112 px, 8 examples")
    return "; ".join(parts)


class TrainingBench:
    """Recipe, baseline and levers on one loaded model (reloading a 3B-7B model per row would eat the budget)."""

    def __init__(self, size: str, checkpoint: Path, release: Path, work: Path, machine: Machine,
                 params: dict[str, int], steps: int, warmup: int):
        from recipes.model import load_model_and_processor
        from recipes.train import prepare

        self.size, self.checkpoint, self.release, self.work = size, checkpoint, release, work
        self.machine, self.params, self.steps, self.warmup = machine, params, steps, warmup
        self.recipe = suite_recipe(size, checkpoint, release, work / "recipe", machine)
        self.prepared = prepare(self.recipe)
        started = time.perf_counter()
        self.model, self.processor = load_model_and_processor(
            self.recipe.model, self.prepared.architecture, gradient_checkpointing=self.recipe.training.gradient_checkpointing)
        self.load_s = time.perf_counter() - started
        self.datasets: dict[tuple, Any] = {}  # trl rows per (max_pixels, with length): built once, reused

    def variant(self, name: str, overrides: dict[str, Any]):
        """The recipe with ``overrides``, on the examples read once, and its trl rows (built once per data key)."""
        from recipes.train import Prepared, sft_dataset

        recipe = suite_recipe(self.size, self.checkpoint, self.release, self.work / name, self.machine, overrides)
        prepared = Prepared(recipe, self.prepared.data, self.prepared.lora_modules, self.prepared.architecture)
        key = (recipe.data.max_pixels, recipe.training.train_sampling_strategy)
        if key not in self.datasets:
            self.datasets[key] = sft_dataset(prepared)
        return prepared, self.datasets[key]

    def _set_checkpointing(self, enabled: bool) -> None:
        if enabled:
            self.model.gradient_checkpointing_enable()
            self.model.enable_input_require_grads()
        else:
            self.model.gradient_checkpointing_disable()

    def run_recipe(self, name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train ``warmup + steps`` optimizer steps through `recipes.train.build_trainer` (trl SFTTrainer)."""
        from transformers import TrainerCallback

        from recipes.train import build_trainer
        from recipes.vision_attention import GROUPED, install_grouped_attention, uninstall_grouped_attention

        prepared, dataset = self.variant(name, {**(overrides or {}), "training.max_steps": self.warmup + self.steps})
        recipe = prepared.recipe
        self._set_checkpointing(recipe.training.gradient_checkpointing)
        if recipe.model.vision_attention == GROUPED:  # at load time in recipes.model; here on the loaded model
            install_grouped_attention(self.model)
        times, meter, machine = StepTimes(), BatchMeter(self.machine), self.machine

        class Timer(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                synchronize(machine)
                times.ends.append(time.perf_counter())

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    times.losses.append(float(logs["loss"]))

        reset_peak(self.machine)
        trainer = build_trainer(prepared, (self.model, self.processor), dataset)
        trainer.add_callback(Timer())
        handle = trainer.model.register_forward_pre_hook(meter.hook, with_kwargs=True)
        try:
            trainer.train()
        finally:
            handle.remove()
            self.model = trainer.model.unload()  # the LoRA layers out, the 4-bit base back
            uninstall_grouped_attention(self.model)
            del trainer
            reset_peak(self.machine)
        t = recipe.training
        vision_trained = any("visual" in m for m in prepared.lora_modules)
        row = training_row(meter, times, self.warmup, self.machine, self.params,
                           checkpointing=t.gradient_checkpointing / (t.activation_checkpointing_kwargs or {}).get("every_n_layers", 1),
                           vision_trained=vision_trained)
        return {"batch": f"{t.per_device_train_batch_size}x{t.gradient_accumulation_steps}", **row}

    def run_baseline(self, micro_batch: int) -> dict[str, Any]:
        """The probe's plain loop: LoRA r=16 on all linear layers, torch AdamW, checkpointing, same data."""
        import torch
        from peft import LoraConfig, get_peft_model

        from recipes.train import build_trainer

        effective = self.recipe.training.per_device_train_batch_size * self.recipe.training.gradient_accumulation_steps
        accumulation = max(1, effective // micro_batch)
        self._set_checkpointing(True)
        # The recipe's collator (trl's, driven by the processor) turns the same rows into the same batches.
        prepared, rows = self.variant("baseline", {})
        collator_trainer = build_trainer(prepared, (self.model, self.processor), rows)
        collate, dataset = collator_trainer.data_collator, collator_trainer.train_dataset
        self.model = collator_trainer.model.unload()
        del collator_trainer
        model = get_peft_model(self.model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                                      target_modules="all-linear", task_type="CAUSAL_LM"))
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        accepted = _forward_keys(self.model)
        generator = torch.Generator().manual_seed(self.recipe.training.seed)
        loader = torch.utils.data.DataLoader(dataset, batch_size=micro_batch, shuffle=True, drop_last=True,
                                             collate_fn=collate, generator=generator)
        meter, times = BatchMeter(self.machine), StepTimes()
        handle = model.register_forward_pre_hook(meter.hook, with_kwargs=True)
        reset_peak(self.machine)
        model.train()
        batches = _cycle(loader)
        vision_lora = [p for n, p in model.named_parameters() if p.requires_grad and "visual" in n]
        vision_trained = None
        try:
            for _ in range(self.warmup + self.steps):
                total = 0.0
                for _ in range(accumulation):
                    batch = {k: v.to(self.machine.device) for k, v in next(batches).items() if k in accepted}
                    loss = model(**batch).loss / accumulation
                    loss.backward()
                    total += float(loss)
                if vision_trained is None:  # does the backward pass reach the vision tower's LoRA? (FLOPs count)
                    vision_trained = any(p.grad is not None and bool(p.grad.any()) for p in vision_lora)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                synchronize(self.machine)
                times.ends.append(time.perf_counter())
                times.losses.append(total)
        finally:
            handle.remove()
            self.model = model.unload()
            del model, optimizer, trainable
            reset_peak(self.machine)
        row = training_row(meter, times, self.warmup, self.machine, self.params, checkpointing=1.0,
                           vision_trained=bool(vision_trained))
        return {"batch": f"{micro_batch}x{accumulation}", **row,
                "note": "vision LoRA gets gradients" if vision_trained else "no gradient reaches the vision LoRA"}

    def close(self) -> None:
        del self.model, self.processor
        reset_peak(self.machine)


def _cycle(loader):
    while True:
        yield from loader


def _forward_keys(model) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def predicted_ratio(lever: Lever, bench: TrainingBench, recipe_row: dict[str, Any]) -> float | None:
    """What the cost model predicts for a lever's tokens/s relative to the recipe (None: no prediction).

    * resolution cap: compute per *sample* falls with its tokens, so tokens/s stays flat while samples/s
      rises by tokens/sample(recipe) / tokens/sample(capped); we report the samples/s ratio as predicted;
    * length grouping: the padded share of the recipe's batches is wasted compute: 1 / (1 - padding);
    * workers: collation time per step moves off the loop: step / (step - collation), timed here;
    * checkpointing off / every 2nd layer: (4 + 2) / 4 and (4 + 2) / (4 + 1) FLOPs per token, if compute-bound;
    * grouped vision attention: the frozen tower runs forward only (about a fifth of the FLOPs at 400k px),
      its hundreds of per-window attention calls per layer become a few: a guess of 1.05.
    """
    if lever.name == "pixels_half":
        cap = bench.recipe.data.max_pixels
        return estimated_tokens_per_sample(bench, cap) / estimated_tokens_per_sample(bench, cap // 2)
    if lever.name == "group_by_length":
        padding = (recipe_row.get("padding %") or 0) / 100
        return 1 / (1 - padding) if padding < 1 else None
    if lever.name == "workers_4":
        collate_s = collation_seconds(bench)
        step_s = bench.recipe.training.per_device_train_batch_size / recipe_row["samples/s"]
        return step_s / max(step_s - collate_s, 1e-9)
    return lever.predict(recipe_row)


def estimated_tokens_per_sample(bench: TrainingBench, max_pixels: int) -> float:
    """Tokens per sample at a resolution cap, from the processor's own resizing of the training images."""
    from recipes.data import load_image

    image_processor = bench.processor.image_processor
    merge = getattr(image_processor, "merge_size", 2) ** 2
    total = 0.0
    examples = bench.prepared.data.examples
    for example in examples:
        image = load_image(example.image, max_pixels)
        grid = image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
        total += float(grid.prod()) / merge
    return total / len(examples) + 100  # + the judge prompt's text, about 100 tokens


def collation_seconds(bench: TrainingBench) -> float:
    """Seconds the recipe's collator takes for one micro-batch, measured on the CPU."""
    from recipes.train import build_trainer

    prepared, dataset = bench.variant("collation", {})
    trainer = build_trainer(prepared, (bench.model, bench.processor), dataset)
    rows = [trainer.train_dataset[i] for i in range(bench.recipe.training.per_device_train_batch_size)]
    collate = trainer.data_collator
    bench.model = trainer.model.unload()
    del trainer
    collate([dict(r) for r in rows])
    started = time.perf_counter()
    for _ in range(3):
        collate([dict(r) for r in rows])
    return (time.perf_counter() - started) / 3


def run_training(report: Report, clock: Clock, args, size: str, checkpoint: Path, params: dict[str, int],
                 work: Path, machine: Machine, *, levers: bool) -> None:
    table = f"training {size}"
    started = time.perf_counter()
    bench = TrainingBench(size, checkpoint, args.release, work / f"train-{size}", machine, params, args.steps,
                          args.warmup)
    report.row("setup", {"size": size, "what": "load recipe model (4-bit)" if machine.four_bit else "load model",
                         "seconds": bench.load_s, "examples": len(bench.prepared.data.examples)})
    try:
        recipe_row = _guarded(report, table, "recipe", lambda: bench.run_recipe("recipe"))
        if recipe_row is not None:
            report.row(table, {"variant": "recipe", "lever": recipe_deviations(machine), **recipe_row,
                               "predicted x": None, "measured x": 1.0})
        micro = 1 if machine.smoke else args.baseline_micro_batch
        baseline_row = _guarded(report, table, "baseline", lambda: bench.run_baseline(micro))
        if baseline_row is not None:
            ratio = recipe_row["tokens/s"] / baseline_row["tokens/s"] if recipe_row else None
            note = baseline_row.pop("note")
            report.row(table, {"variant": "baseline", "lever": "probe's plain loop (all-linear LoRA, AdamW)",
                               **baseline_row, "predicted x": None,
                               "measured x": 1 / ratio if ratio else None,
                               "note": f"{note}; {PROBE_3B}" if size == "3b" else note})
            if recipe_row:
                memory = (recipe_row["peak GiB"] / baseline_row["peak GiB"]) if recipe_row["peak GiB"] else None
                report.row("targets", {
                    "size": size, "recipe/baseline tokens/s": ratio, "target": ">= 3x",
                    "recipe/baseline peak memory": memory, "memory target": "<= 1x",
                    "recipe MFU %": recipe_row["MFU %"], "MFU target": ">= 15% (3B)"})
        if not levers or recipe_row is None:
            return
        for lever in LEVERS:
            if clock.left() < args.reserve_s:
                report.row(table, {"variant": lever.name, "lever": lever.what,
                                   "note": f"skipped: time budget (--budget-s {args.budget_s:.0f}, "
                                           f"--reserve-s {args.reserve_s:.0f}) spent"})
                continue
            predicted = _guarded(report, table, f"{lever.name} (prediction)",
                                 lambda lever=lever: predicted_ratio(lever, bench, recipe_row), quiet=True)
            row = _guarded(report, table, lever.name,
                           lambda lever=lever: bench.run_recipe(lever.name, lever.overrides(bench.recipe)))
            if row is None:
                continue
            basis = "samples/s" if lever.name == "pixels_half" else "tokens/s"
            report.row(table, {"variant": lever.name, "lever": lever.what, **row, "predicted x": predicted,
                               "measured x": row[basis] / recipe_row[basis],
                               "note": "x = samples/s ratio" if basis == "samples/s" else None})
    finally:
        bench.close()
        report.row("setup", {"size": size, "what": "training section", "seconds": time.perf_counter() - started})


def _guarded(report: Report, table: str, name: str, work: Callable[[], Any], *, quiet: bool = False) -> Any:
    """Run one measurement; an error (out of memory included) becomes a row saying so, and the suite goes on."""
    try:
        return work()
    except Exception as error:  # noqa: BLE001 - every failure is reported as data, never swallowed
        message = f"{type(error).__name__}: {str(error)[:300]}"
        if not quiet:
            report.row(table, {"variant": name, "note": f"error: {message}"})
        traceback.print_exc()
        if report.machine is not None:
            with contextlib.suppress(Exception):
                reset_peak(report.machine)
        return None


# --------------------------------------------------------------------------------------- correctness


def run_correctness(report: Report, args, size: str, checkpoint: Path, work: Path, machine: Machine) -> Path | None:
    """`recipes.train.train` end to end (20 steps, adapter, merge), then reload checks; returns the adapter."""
    from recipes.train import train

    name_4bit = "4-bit recipe trains 20 steps and its loss falls"
    if not machine.four_bit:
        report.check(name_4bit, "skipped", machine.why_no_4bit())
        name = "recipe (4-bit off) trains 20 steps and its loss falls"
    else:
        name = name_4bit
    recipe = suite_recipe(size, checkpoint, args.release, work / "correctness", machine, {
        "training.max_steps": 20, "training.per_device_train_batch_size": 2,
        "training.gradient_accumulation_steps": 1, "training.save_steps": 20, "training.warmup_steps": 0,
        "training.lr_scheduler_type": "constant"})
    started = time.perf_counter()
    try:
        result = train(recipe, merge=True)
    except Exception as error:  # noqa: BLE001
        report.check(name, "error", f"{type(error).__name__}: {str(error)[:300]}")
        traceback.print_exc()
        return None
    state = json.loads((result.output_dir / "checkpoint-20" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    report.check(name, "pass" if len(losses) == 20 and last < first else "fail",
                 f"{len(losses)} steps, mean loss of steps 1-5 {first:.3f} -> 16-20 {last:.3f} "
                 f"({time.perf_counter() - started:.0f} s with merge)")
    adapter_checks(report, checkpoint, result, machine)
    return result.adapter_dir


def adapter_checks(report: Report, checkpoint: Path, result, machine: Machine) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dtype = torch.bfloat16 if machine.cuda else torch.float32
    processor = AutoProcessor.from_pretrained(result.adapter_dir)
    inputs = _one_judge_input(processor, args_release=report.header["release"]).to(machine.device)
    try:
        base = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=dtype).to(machine.device).eval()
        with torch.inference_mode():
            base_logits = base(**inputs).logits[0, -1].float()
        judge = PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()
        with torch.inference_mode():
            judge_logits = judge(**inputs).logits[0, -1].float()
        change = float((judge_logits - base_logits).abs().max())
        report.check("adapter saves, reloads and changes the output", "pass" if change > 1e-3 else "fail",
                     f"max |logit change| at the verdict position {change:.4f}")
        del judge, base
        reset_peak(machine)
    except Exception as error:  # noqa: BLE001
        report.check("adapter saves, reloads and changes the output", "error", f"{type(error).__name__}: {error}")
        return
    try:
        merged = AutoModelForImageTextToText.from_pretrained(result.merged_dir, dtype=dtype).to(machine.device).eval()
        with torch.inference_mode():
            merged_logits = merged(**inputs).logits[0, -1].float()
        lora_left = [n for n, _ in merged.named_parameters() if "lora_" in n]
        gap = float((merged_logits.softmax(-1) - judge_logits.softmax(-1)).abs().max())
        tolerance = 1e-2 if machine.cuda else 1e-4  # bf16 rounding of the folded weights on CUDA
        ok = not lora_left and gap <= tolerance
        report.check("--merge writes weights that load", "pass" if ok else "fail",
                     f"{result.merged_dir.name}/ loads, no LoRA parameters left: {not lora_left}; max |p merged - "
                     f"p base+adapter| {gap:.2e} (tolerance {tolerance:g})")
        del merged
        reset_peak(machine)
    except Exception as error:  # noqa: BLE001
        report.check("--merge writes weights that load", "error", f"{type(error).__name__}: {error}")


def _one_judge_input(processor, args_release: str):
    from judging.format import prompt_messages
    from judging.sources import get_source
    from recipes.data import load_image

    example = next(iter(get_source("rms", release=args_release).examples("test", "query")))
    text = processor.apply_chat_template(prompt_messages(example), add_generation_prompt=True, tokenize=False)
    return processor(text=[text], images=[load_image(example.image, None)], return_tensors="pt")


# ------------------------------------------------------------------------------------------- scoring


def run_scoring(report: Report, args, size: str, checkpoint: Path, adapter: Path | None, machine: Machine) -> None:
    """Fast path vs per-item generate vs batched generate on the same judge and items (public entry points)."""
    from eval.judges.hf import HFJudge
    from modelcalls.hf_loading import load_model
    from judging.sources import get_source

    table = f"scoring {size}"
    examples = list(get_source("rms", release=str(args.release)).examples("test", "query"))[: args.items]
    dtype = "bfloat16" if machine.cuda else "float32"
    started = time.perf_counter()
    loaded = load_model(str(checkpoint), str(adapter) if adapter else None, dtype=dtype, device=machine.device)
    report.row("setup", {"size": size, "what": f"load judge ({dtype}{', adapter' if adapter else ', no adapter'})",
                         "seconds": time.perf_counter() - started})
    judges = {
        "fast (one forward)": HFJudge(loaded, mode="fast", batch_size=args.score_batch),
        "generate, per item": HFJudge(loaded, mode="generative", batch_size=1, max_new_tokens=args.gen_tokens),
        "generate, batched": HFJudge(loaded, mode="generative", batch_size=args.score_batch,
                                     max_new_tokens=args.gen_tokens),
    }
    predictions, rates = {}, {}
    for name, judge in judges.items():
        def score(judge=judge):
            judge.score(examples[: min(2, len(examples))])  # warm-up
            synchronize(machine)
            begin = time.perf_counter()
            scored = judge.score(examples)
            synchronize(machine)
            return scored, len(examples) / (time.perf_counter() - begin)

        outcome = _guarded(report, table, name, score)
        if outcome is not None:
            predictions[name], rates[name] = outcome
    fast = predictions.get("fast (one forward)")
    per_item = predictions.get("generate, per item")
    utilisation = fast_path_utilisation(loaded, examples, rates["fast (one forward)"], machine) if fast else None
    for name, scored in predictions.items():
        row = {"path": name, "items": len(scored), "batch": judges[name].batch_size, "items/s": rates[name],
               "x per-item generate": rates[name] / rates["generate, per item"] if "generate, per item" in rates
               else None}
        if fast is not None and name != "fast (one forward)":
            row.update(verdict_agreement(fast, scored))
        if name == "fast (one forward)":
            row["fraction of bf16 limit"] = utilisation
        row["max new tokens"] = None if name.startswith("fast") else args.gen_tokens
        report.row(table, row)
    if fast is not None and per_item is not None:
        p_unsafe_check(report, fast, per_item)
        agreement = verdict_agreement(fast, per_item)
        report.row("scoring targets", {
            "size": size, "fast / per-item generate items/s": rates["fast (one forward)"] / rates["generate, per item"],
            "target": ">= 25x", "same verdict as per-item generate (first step) %": agreement["agree (first step) %"],
            "same verdict (parsed text) %": agreement["agree (parsed text) %"], "verdict target": ">= 99%",
            "fast path fraction of bf16 limit": utilisation,
            "limit target": ">= 0.40 (3B)"})
    del judges, loaded
    reset_peak(machine)


def verdict_agreement(fast, generated) -> dict[str, Any]:
    """Agreement with the fast path: on the parsed text, and on the first generated step's label tokens."""
    parsed = [(f.label, g.label) for f, g in zip(fast, generated, strict=True) if g.label is not None]
    first = [(f.label, "unsafe" if _first_step(g) >= 0.5 else "safe") for f, g in zip(fast, generated, strict=True)
             if _first_step(g) is not None]
    return {
        "unparseable": sum(g.label is None for g in generated),
        "agree (parsed text) %": 100 * sum(a == b for a, b in parsed) / len(parsed) if parsed else None,
        "agree (first step) %": 100 * sum(a == b for a, b in first) / len(first) if first else None,
    }


def _first_step(prediction) -> float | None:
    value = prediction.extras.get("first_step_p_unsafe")
    return float(value) if value is not None else None


def p_unsafe_check(report: Report, fast, per_item) -> None:
    name = "fast path p_unsafe equals generate's first-step probability within 1e-3"
    pairs = [(f.p_unsafe, _first_step(g)) for f, g in zip(fast, per_item, strict=True)]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not pairs:
        report.check(name, "fail", "generate() gave no first-step label probabilities (extras['first_step_p_unsafe'])")
        return
    gap = max(abs(a - b) for a, b in pairs)
    report.check(name, "pass" if gap <= P_UNSAFE_TOLERANCE else "fail",
                 f"max |difference| {gap:.2e} over {len(pairs)} items (fast batched, generate one at a time)")


def fast_path_utilisation(loaded, examples, items_per_s: float, machine: Machine) -> float | None:
    """Forward matmul FLOPs of the fast path (2 x params x tokens) per second over the measured bf16 rate."""
    if not machine.peak_flops:
        return None
    from modelcalls.hf_tokens import render_chat as render_prompt
    from recipes.data import load_image
    from judging.format import prompt_messages

    params = parameter_counts(loaded.model)
    processor = loaded.processor
    tokens = patches = 0.0
    for example in examples:
        text = render_prompt(loaded, prompt_messages(example))
        batch = processor(text=[text], images=[load_image(example.image, None)], return_tensors="pt")
        tokens += float(batch["input_ids"].numel())
        patches += float(batch["pixel_values"].shape[0])
    flops_per_item = 2 * (params["lm"] * tokens + params["vision"] * patches) / len(examples)
    return flops_per_item * items_per_s / machine.peak_flops


# ---------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python bench/gpu_suite.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json and results.md")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny dimensions on the CPU, the same code paths, a minute or two (what the test runs)")
    parser.add_argument("--sizes", nargs="+", default=None, choices=sorted(HUB_IDS),
                        help="model sizes to train (default 3b 7b; smoke: 3b); levers, checks and scoring use the first")
    parser.add_argument("--release", type=Path, default=SAMPLE_RELEASE,
                        help="an RMS release folder to train and score on (default: the sample release)")
    parser.add_argument("--tokenizer", default=None, help="a folder with Qwen2.5-VL's own tokenizer files, if at hand")
    parser.add_argument("--budget-s", type=float, default=None, help="stop starting new rows after this (default 420)")
    parser.add_argument("--reserve-s", type=float, default=None,
                        help="seconds kept for correctness checks and scoring when running levers (default 180)")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps per row (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps first (at least 1)")
    parser.add_argument("--baseline-micro-batch", type=int, default=4,
                        help="the baseline's micro-batch (the probe's largest that fit); accumulation makes up "
                             "the recipe's effective batch")
    parser.add_argument("--items", type=int, default=None, help="items scored per path (default 16; smoke 4)")
    parser.add_argument("--score-batch", type=int, default=None, help="batch of the fast and batched paths (default 16)")
    parser.add_argument("--gen-tokens", type=int, default=None, help="max new tokens of generate() (default 32)")
    parser.add_argument("--sections", nargs="+", default=["training", "levers", "correctness", "scoring"],
                        choices=["training", "levers", "correctness", "scoring"])
    return parser


def _defaults(args) -> None:
    smoke = args.smoke
    args.sizes = args.sizes or (["3b"] if smoke else ["3b", "7b"])
    args.budget_s = args.budget_s if args.budget_s is not None else (600.0 if smoke else 420.0)
    args.reserve_s = args.reserve_s if args.reserve_s is not None else (0.0 if smoke else 180.0)
    args.steps = args.steps or (1 if smoke else 3)
    args.items = args.items or (4 if smoke else 16)
    args.score_batch = args.score_batch or (2 if smoke else 16)
    args.gen_tokens = args.gen_tokens or (4 if smoke else 32)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _defaults(args)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    if not (args.release / "release.json").is_file():
        parser.error(f"--release {args.release}: not an RMS release folder (no release.json)")
    broken = _unimportable(REQUIRED)
    if broken:
        parser.error(f"cannot import {'; '.join(broken)}: install them, or on a machine without a package index "
                     "carry them as wheels (the docstring of bench/gpu_suite.py says how)")
    args.release = args.release.resolve()
    import torch

    if args.smoke:
        torch.set_num_threads(1)  # see tests/recipes/conftest.py: one thread is faster on a shared CPU
    machine = detect_machine(args.smoke)
    clock = Clock(args.budget_s)
    header = {
        "mode": "smoke (CPU, tiny dimensions: a format and plumbing check, not a performance figure)"
        if args.smoke else "full",
        "device": torch.cuda.get_device_name(0) if machine.cuda else f"CPU ({platform.machine()}, {os.cpu_count()} cores)",
        "libraries": ", ".join(f"{k} {v}" for k, v in library_versions().items()),
        "command": "python bench/gpu_suite.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "release": str(args.release),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    report = Report(args.out, header)
    report.machine = machine
    machine.peak_flops = measure_bf16_matmul(machine)
    report.header["bf16 matmul TFLOP/s (measured)"] = machine.peak_flops / 1e12 if machine.peak_flops else "n/a (CPU)"
    report.flush()
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as tmp:
        work = Path(tmp)
        first = args.sizes[0]
        for size in args.sizes:
            if clock.left() <= 0:
                report.row("setup", {"size": size, "what": "skipped: time budget spent"})
                continue
            checkpoint = work / f"qwen2_5_vl_{size}"
            params = _guarded(report, "setup", f"write random-init {size} checkpoint", lambda: write_checkpoint(
                size, checkpoint, machine, release=args.release, max_pixels=_recipe_max_pixels(size, machine),
                tokenizer_dir=args.tokenizer))
            if params is None:
                continue
            report.row("setup", {"size": size, "what": "write random-init checkpoint (processor: "
                                 f"{params.pop('processor')})", "seconds": params.pop("write_s"),
                                 "LM linear params (B)": params["lm"] / 1e9,
                                 "vision linear params (B)": params["vision"] / 1e9})
            if "training" in args.sections:
                _guarded(report, f"training {size}", "training section",
                         lambda: run_training(report, clock, args, size, checkpoint, params, work, machine,
                                              levers=size == first and "levers" in args.sections))
            if size != first:
                continue
            adapter = None
            if "correctness" in args.sections:
                adapter = _guarded(report, "setup", "correctness section",
                                   lambda: run_correctness(report, args, size, checkpoint, work, machine))
            if "scoring" in args.sections:
                _guarded(report, f"scoring {size}", "scoring",
                         lambda: run_scoring(report, args, size, checkpoint, adapter, machine))
    report.header["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    report.header["wall s"] = round(clock.elapsed(), 1)
    report.flush()
    print(report.markdown())
    return 0


def _unimportable(names: tuple[str, ...]) -> list[str]:
    """The packages among ``names`` that do not import, each with why (missing, or a version clash)."""
    import importlib

    broken = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - an import can fail in many ways; each is reported
            broken.append(f"{name} ({type(error).__name__}: {str(error)[:200]})")
    return broken


def _recipe_max_pixels(size: str, machine: Machine) -> int:
    from recipes.config import load_recipe

    return 112 * 112 if machine.smoke else load_recipe(RECIPES[size]).data.max_pixels


if __name__ == "__main__":
    sys.exit(main())
