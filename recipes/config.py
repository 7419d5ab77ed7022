"""The typed recipe: one YAML file per base model and training method, loaded into `Recipe`.

Unknown keys are an error naming the key and the file, with a "did you mean" suggestion. Overrides use dotted
keys for nested sections (``training.max_steps=3``); their values are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BALANCE_MODES = ("none", "downsample", "upsample")


class RecipeError(ValueError):
    """A recipe is invalid; the message names the file and the key."""


@dataclass
class ModelConfig:
    name_or_path: str  # hub id, local directory, or an offline alias (tiny-llava)
    revision: str | None = None
    torch_dtype: str = "bfloat16"  # bfloat16 | float16 | float32
    attn_implementation: str | None = "sdpa"
    trust_remote_code: bool = False
    # Vision-tower attention (recipes/vision_attention.py): per_chunk = transformers' own (one call per image
    # or window); grouped = one batched call per distinct chunk length (Qwen2.5-VL only).
    vision_attention: str = "per_chunk"


@dataclass
class QuantizationConfig:
    load_in_4bit: bool = True
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # Module-name suffixes LoRA wraps (peft semantics); `exclude_modules` is a regex over full module names
    # (e.g. the vision tower) left untouched.
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    exclude_modules: str | None = None
    bias: str = "none"


@dataclass
class SourceSpec:
    name: str  # registry name in judging.sources (rms, vlguard, spa_vl, mis, ...)
    split: str = "train"
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the source
    max_samples: int | None = None  # cap this source before mixing


@dataclass
class DataConfig:
    task: str = "query"  # query | response
    sources: list[SourceSpec] = field(default_factory=list)
    with_category: bool = False  # append "Category: <c>" to unsafe targets
    balance: str = "downsample"  # none | downsample (majority to minority) | upsample (minority repeated)
    max_train_samples: int | None = None  # cap after mixing and balancing
    train_fraction: float = 1.0  # keep this fraction (scale experiments), after balancing
    max_pixels: int | None = 200704  # images larger than this many pixels are downscaled (aspect kept)
    allow_single_class: bool = False  # a judge trained on one label is almost always a mistake


@dataclass
class TrainingConfig:
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 4
    max_length: int | None = 2048
    gradient_checkpointing: bool = True
    # With gradient_checkpointing: checkpoint only every n-th decoder layer; the others keep their
    # activations (less recomputation, more memory). 1 = every layer.
    checkpoint_every_n_layers: int = 1
    # Batches of examples of similar length (less padding); lengths estimated from text and image size.
    group_by_length: bool = False
    optim: str = "paged_adamw_8bit"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: bool = True
    logging_steps: int = 10
    save_steps: int = 200
    save_total_limit: int | None = 2
    report_to: list[str] = field(default_factory=list)
    dataloader_num_workers: int = 0


@dataclass
class Recipe:
    model: ModelConfig
    data: DataConfig
    lora: LoraSettings = field(default_factory=LoraSettings)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    seed: int = 42
    output_dir: str = "outputs/judge"
    path: str | None = None  # the YAML file it came from (not a YAML key)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("path")
        return data


# ------------------------------------------------------------------------------------------------ loading


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build(cls: type, data: Any, where: str, origin: str) -> Any:
    """Instantiate dataclass `cls` from a mapping, recursively; unknown or missing keys raise `RecipeError`."""
    if not isinstance(data, dict):
        raise RecipeError(f"{origin}: {where or 'the recipe'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise RecipeError(f"{origin}: unknown key {dotted!r}{_suggest(str(key), list(fields))}; "
                              f"known keys here: {', '.join(fields)}")
        kwargs[key] = _convert(hints[key], value, dotted, origin)
    missing = [name for name, f in fields.items() if name not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RecipeError(f"{origin}: missing required key(s) {[f'{where}.{m}' if where else m for m in missing]}")
    return cls(**kwargs)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _convert(hint: Any, value: Any, where: str, origin: str) -> Any:
    """Check `value` against the annotation `hint` (dataclass, list[...], dict, Optional, scalar)."""
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, origin)
    kind, arguments = typing.get_origin(hint), typing.get_args(hint)
    if kind in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in arguments:
                return None
            raise RecipeError(f"{origin}: {where} must not be empty")
        members = [a for a in arguments if a is not type(None)]
        for member in members:
            try:
                return _convert(member, value, where, origin)
            except RecipeError:
                continue
        raise RecipeError(f"{origin}: {where} must be {' or '.join(_type_name(m) for m in members)}, got {value!r}")
    if hint is Any:
        return value
    if value is None:
        raise RecipeError(f"{origin}: {where} must not be empty")
    if kind is list:
        if not isinstance(value, list):
            raise RecipeError(f"{origin}: {where} must be a list, got {value!r}")
        return [_convert(arguments[0], item, f"{where}[{index}]", origin) for index, item in enumerate(value)]
    if kind is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{origin}: {where} must be a mapping, got {value!r}")
        return dict(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (isinstance(value, bool) and hint is not bool):
        raise RecipeError(f"{origin}: {where} must be {_type_name(hint)}, got {value!r}")
    return value


def _check_values(recipe: Recipe, origin: str) -> None:
    if recipe.data.task not in ("query", "response"):
        raise RecipeError(f"{origin}: data.task must be 'query' or 'response', got {recipe.data.task!r}")
    if recipe.data.balance not in BALANCE_MODES:
        raise RecipeError(f"{origin}: data.balance must be one of {BALANCE_MODES}, got {recipe.data.balance!r}")
    if not 0.0 < recipe.data.train_fraction <= 1.0:
        raise RecipeError(f"{origin}: data.train_fraction must be in (0, 1], got {recipe.data.train_fraction}")
    if not recipe.data.sources:
        raise RecipeError(f"{origin}: data.sources is empty; name at least one training source")
    for name in ("torch_dtype",):
        if getattr(recipe.model, name) not in ("bfloat16", "float16", "float32"):
            raise RecipeError(f"{origin}: model.{name} must be bfloat16, float16 or float32")
    if recipe.quantization.compute_dtype not in ("bfloat16", "float16", "float32"):
        raise RecipeError(f"{origin}: quantization.compute_dtype must be bfloat16, float16 or float32")
    if recipe.quantization.quant_type not in ("nf4", "fp4"):
        raise RecipeError(f"{origin}: quantization.quant_type must be nf4 or fp4")
    if not recipe.lora.target_modules:
        raise RecipeError(f"{origin}: lora.target_modules is empty")
    from recipes.vision_attention import VISION_ATTENTION_MODES

    if recipe.model.vision_attention not in VISION_ATTENTION_MODES:
        raise RecipeError(f"{origin}: model.vision_attention must be one of {VISION_ATTENTION_MODES}, got "
                          f"{recipe.model.vision_attention!r}")
    if recipe.training.checkpoint_every_n_layers < 1:
        raise RecipeError(f"{origin}: training.checkpoint_every_n_layers must be at least 1, got "
                          f"{recipe.training.checkpoint_every_n_layers}")


def recipe_from_dict(data: dict[str, Any], origin: str = "<dict>") -> Recipe:
    recipe = _build(Recipe, data, "", origin)
    recipe.path = origin if origin != "<dict>" else None
    _check_values(recipe, origin)
    return recipe


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any], origin: str) -> dict[str, Any]:
    """Set dotted keys (``training.max_steps``) in a nested recipe mapping; returns a new mapping."""
    import copy

    data = copy.deepcopy(data)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"{origin}: override {dotted!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a recipe YAML, apply dotted-key overrides, validate keys and types."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: not valid YAML: {error}") from error
    return recipe_from_dict(apply_overrides(data, overrides or {}, str(path)), str(path))


def parse_override_args(tokens: list[str]) -> dict[str, Any]:
    """``["--training.max_steps", "3", "--seed=1"]`` -> ``{"training.max_steps": 3, "seed": 1}``."""
    overrides: dict[str, Any] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--"):
            raise RecipeError(f"unexpected argument {token!r}; overrides look like --section.key value")
        key = token[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
            index += 1
        else:
            if index + 1 >= len(tokens):
                raise RecipeError(f"override {token!r} has no value")
            raw = tokens[index + 1]
            index += 2
        overrides[key] = yaml.safe_load(raw)
    return overrides
