"""The recipe: one YAML file per base model and method, in three sections, each parsed into its owner's type.

* ``model``: trl's own `ModelConfig` (every field: ``model_name_or_path``, ``model_revision``, ``dtype``,
  ``load_in_4bit``, ``bnb_4bit_quant_type``, ``use_bnb_nested_quant``, ``lora_r``, ``lora_target_modules``, ...)
  plus ``vision_attention`` (`RecipeModelConfig`);
* ``training``: trl's own `SFTConfig`: every field of it and of transformers' ``TrainingArguments`` works,
  ``output_dir`` and ``seed`` included;
* ``data``: our typed block (`DataConfig`, pydantic, as every other config of the toolkit).

Every value is checked against the field's annotation before the config class sees it, so a misspelt key or
a wrong type is one line naming the file and the key (``recipes/x.yaml: training.learnig_rate: unknown key
(did you mean 'learning_rate'?)``), never a traceback. Overrides use dotted keys (``training.max_steps=3``);
their values are parsed as YAML scalars.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PositiveInt, TypeAdapter, ValidationError
from trl import ModelConfig, SFTConfig

from recipes.vision_attention import PER_CHUNK
from typed_config import ConfigError, StrictModel, load_yaml, parse_config

SECTIONS = ("model", "training", "data")


class RecipeError(ConfigError):
    """A recipe is invalid or cannot run; the message names the file and the key."""


# ------------------------------------------------------------------------------------------------ model


@dataclass
class RecipeModelConfig(ModelConfig):
    """trl's `ModelConfig` plus the one model setting trl does not have."""

    # Vision-tower attention: per_chunk = transformers' own (one call per image or window); grouped = one
    # batched call per distinct chunk length (Qwen2.5-VL only, recipes/vision_attention.py).
    vision_attention: Literal["per_chunk", "grouped"] = PER_CHUNK


# ------------------------------------------------------------------------------------------------- data


class SourceSpec(StrictModel):
    name: str  # registry name in judging.sources (rms, vlguard, spa_vl, mis, ...)
    split: str = "train"
    options: dict[str, Any] = Field(default_factory=dict)  # keyword arguments of the source
    max_samples: PositiveInt | None = None  # cap this source before mixing


class DataConfig(StrictModel):
    name: str | None = None  # the training data's name on a leaderboard (default: its source names joined by +)
    task: Literal["query", "response"] = "query"
    sources: list[SourceSpec] = Field(min_length=1)
    with_category: bool = False  # append "Category: <c>" to unsafe targets
    balance: Literal["none", "downsample", "upsample"] = "downsample"  # downsample: majority cut to minority
    max_train_samples: PositiveInt | None = None  # cap after mixing and balancing
    train_fraction: float = Field(default=1.0, gt=0.0, le=1.0)  # keep this fraction, after balancing
    max_pixels: PositiveInt | None = 200704  # larger images are downscaled (aspect kept), lazily
    allow_single_class: bool = False  # a judge trained on one label is almost always a mistake


# ----------------------------------------------------------------------------------------------- recipe


# What every recipe's training section means unless it says otherwise: the loss on the judge's answer only,
# the image columns kept for trl's vision collator, no experiment tracker.
TRAINING_DEFAULTS: dict[str, Any] = {"completion_only_loss": True, "remove_unused_columns": False, "report_to": "none"}


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. ``training`` is the `SFTConfig` for this machine (on a machine without CUDA:
    ``use_cpu`` on, ``bf16`` off); ``source`` is the mapping it was built from (the YAML plus overrides)."""

    model: RecipeModelConfig
    training: SFTConfig
    data: DataConfig
    source: dict[str, Any]
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved recipe (every field, defaults included), for ``judge_metadata.json``."""
        return {"model": dataclasses.asdict(self.model), "training": self.training.to_dict(),
                "data": self.data.model_dump(mode="json")}

    def with_overrides(self, overrides: dict[str, Any]) -> Recipe:
        return recipe_from_dict(apply_overrides(self.source, overrides, self.path or "<recipe>"), self.path)


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _checked_fields(cls: type, section: str, values: Any, origin: str) -> dict[str, Any]:
    """``values`` checked key by key against dataclass ``cls``'s fields and annotations (strict: a YAML string
    is never taken for a number); the first problem raises `RecipeError` naming ``section.key``."""
    if not isinstance(values, dict):
        raise RecipeError(f"{origin}: {section}: must be a mapping of keys, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    for key, value in values.items():
        if key not in names:
            raise RecipeError(f"{origin}: {section}.{key}: unknown key{_suggest(str(key), names)}; it is not a "
                              f"field of {cls.__mro__[0].__name__}")
        try:
            TypeAdapter(hints[key]).validate_python(value, strict=True)
        except ValidationError as error:
            problem = error.errors()[0]
            raise RecipeError(f"{origin}: {section}.{key}: {problem['msg']} (got {value!r:.80})") from None
        choices = _enum_choices(hints[key])
        if choices and isinstance(value, str) and value not in choices:
            raise RecipeError(f"{origin}: {section}.{key}: must be one of {', '.join(choices)} (got {value!r:.80})")
    return values


def _enum_choices(hint: Any) -> list[str]:
    """The allowed values of a field typed ``SomeEnum | str`` (transformers' way of naming choices)."""
    members = typing.get_args(hint) or (hint,)
    for member in members:
        if isinstance(member, type) and issubclass(member, enum.Enum):
            return [str(item.value) for item in member]
    return []


def _build(cls: type, section: str, values: dict[str, Any], origin: str):
    try:
        return cls(**values)
    except (ValueError, TypeError) as error:  # the config class's own checks (__post_init__)
        message = " ".join(str(error).split())
        raise RecipeError(f"{origin}: {section}: {message}") from None


def _machine_settings(training: dict[str, Any]) -> dict[str, Any]:
    """What this machine needs: without CUDA the Trainer runs on the CPU, in the model's precision."""
    import torch

    if torch.cuda.is_available():
        return {}
    return {"use_cpu": True, "bf16": False}


def recipe_from_dict(data: Any, origin: str | None = None) -> Recipe:
    where = origin or "<recipe>"
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe is a mapping with the sections {', '.join(SECTIONS)}")
    for key in data:
        if key not in SECTIONS:
            hint = next((f" (it belongs in {s}.{key})" for s, c in _section_classes().items() if key in _field_names(c)),
                        _suggest(str(key), list(SECTIONS)))
            raise RecipeError(f"{where}: {key}: unknown key{hint}; a recipe has the sections {', '.join(SECTIONS)}")
    missing = [section for section in SECTIONS if section not in data]
    if missing:
        raise RecipeError(f"{where}: {missing[0]}: required section is missing")
    classes = _section_classes()
    model_values = _checked_fields(classes["model"], "model", data["model"], where)
    if not model_values.get("model_name_or_path"):
        raise RecipeError(f"{where}: model.model_name_or_path: required key is missing")
    model = _build(classes["model"], "model", model_values, where)
    training_values = {**TRAINING_DEFAULTS, **_checked_fields(classes["training"], "training", data["training"], where)}
    training = _build(classes["training"], "training", {**training_values, **_machine_settings(training_values)}, where)
    try:
        data_config = parse_config(DataConfig, data["data"], source=f"{where}: data")
    except ConfigError as error:
        raise RecipeError(str(error).replace(f"{where}: data: ", f"{where}: data.")) from None
    return Recipe(model=model, training=training, data=data_config, source=copy.deepcopy(data), path=origin)


def _section_classes() -> dict[str, type]:
    return {"model": RecipeModelConfig, "training": SFTConfig}


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any], origin: str) -> dict[str, Any]:
    """Set dotted keys (``training.max_steps``) in a nested recipe mapping; returns a new mapping."""
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
    """Read a recipe YAML, apply dotted-key overrides, validate every key and type."""
    try:
        data = load_yaml(path, what="recipe")
    except ConfigError as error:
        raise RecipeError(str(error)) from None
    return recipe_from_dict(apply_overrides(data or {}, overrides or {}, str(path)), str(path))


def parse_override_args(tokens: list[str]) -> dict[str, Any]:
    """``["--training.max_steps", "3", "--data.balance=none"]`` -> ``{"training.max_steps": 3, "data.balance": "none"}``."""
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
