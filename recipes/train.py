"""Fine-tune a vision-language safety judge with QLoRA from a recipe YAML.

    python -m recipes.train recipes/qwen2_5_vl_7b/qlora.yaml [--training.max_steps 100 ...] [--resume] [--merge]
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml -m recipes.train RECIPE.yaml

Programmatic entry point (used by eval's grid): ``train(recipe, overrides) -> TrainResult``.

Order of work: load + validate the recipe (keys, types) -> check the architecture and LoRA targets on the
meta device (no weights) -> read, mix and balance the training data and check labels and images -> only
then load the model, check that no answer is lost to truncation, and train with trl's SFTTrainer (loss on the judge's answer tokens only) -> save the
LoRA adapter, ``judge_metadata.json`` and, with ``merge``, merged full weights.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipes.architectures import Architecture, ArchitectureError, architecture, lora_modules, model_config, module_names
from recipes.config import Recipe, RecipeError, load_recipe, parse_override_args
from recipes.data import CappedImages, TrainingData, build_training_data, check_training_data, to_sft_dataset
from recipes.metadata import METADATA_FILE, build_metadata, write_metadata
from recipes.vision_attention import GROUPED, SUPPORTED_MODEL_TYPES

ADAPTER_SUBDIR = "adapter"
MERGED_SUBDIR = "merged"


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run put its outputs.

    ``output_dir``: the run folder (also holds trainer checkpoints); ``adapter_dir``: the LoRA adapter and the
    processor (load with ``peft.PeftModel.from_pretrained(base, adapter_dir)``); ``metadata_path``:
    ``judge_metadata.json`` (provenance); ``merged_dir``: merged full weights when ``merge=True``.
    """

    output_dir: Path
    adapter_dir: Path
    metadata_path: Path
    final_loss: float | None
    global_step: int
    merged_dir: Path | None = None


@dataclass
class Prepared:
    recipe: Recipe
    data: TrainingData
    lora_modules: list[str]
    architecture: Architecture


def resolve_recipe(recipe: Recipe | str | os.PathLike, overrides: dict[str, Any] | None = None) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe.with_overrides(overrides) if overrides else recipe
    return load_recipe(recipe, overrides)


def prepare(recipe: Recipe) -> Prepared:
    """Every check that can fail before training, without loading weights."""
    from recipes.model import lora_targets

    model = recipe.model
    origin = recipe.path or "<recipe>"
    if not model.use_peft:
        raise RecipeError(f"{origin}: model.use_peft: recipes train LoRA adapters; set it to true")
    try:
        config = model_config(model.model_name_or_path, model.model_revision)
        arch = architecture(config.model_type, model.model_name_or_path)
        if model.vision_attention == GROUPED and arch.model_type not in SUPPORTED_MODEL_TYPES:
            raise ArchitectureError(f"{model.model_name_or_path!r} is a {arch.model_type!r} model; grouped vision "
                                    f"attention supports {', '.join(SUPPORTED_MODEL_TYPES)}; use per_chunk")
        wrapped = lora_modules(lora_targets(model, arch), arch.vision_modules, module_names(config),
                               model.model_name_or_path)
    except ArchitectureError as error:
        raise RecipeError(f"{origin}: model: {error}") from None
    data = build_training_data(recipe.data, recipe.training.seed)
    check_training_data(data, recipe.data)
    return Prepared(recipe, data, wrapped, arch)


def _last_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


def build_trainer(prepared: Prepared, loaded: tuple[Any, Any] | None = None, dataset=None):
    """The SFTTrainer for a prepared recipe (exposed for tests and benchmarks).

    The model is loaded here with `recipes.model.load_model_and_processor` and the rows built with
    `recipes.data.to_sft_dataset`, unless ``loaded`` passes the ``(model, processor)`` that function returned
    earlier and ``dataset`` the rows built for this recipe's data (bench/gpu_suite.py trains several variants
    on one loaded 4-bit model; peft's ``unload()`` gives the base back between them).
    """
    from transformers import set_seed
    from trl import SFTTrainer

    from recipes.model import load_model_and_processor, lora_config

    recipe = prepared.recipe
    set_seed(recipe.training.seed)
    if loaded is None:
        loaded = load_model_and_processor(recipe.model, prepared.architecture,
                                          gradient_checkpointing=recipe.training.gradient_checkpointing)
    model, processor = loaded
    if dataset is None:
        dataset = sft_dataset(prepared)
    trainer = SFTTrainer(
        model=model,
        args=recipe.training,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(recipe.model, prepared.architecture),
    )
    trainer.data_collator = CappedImages(trainer.data_collator, recipe.data.max_pixels)
    return trainer


def sft_dataset(prepared: Prepared):
    """The trl rows of a prepared recipe's training examples (images capped at ``data.max_pixels`` as they are read)."""
    recipe = prepared.recipe
    return to_sft_dataset(prepared.data.examples, recipe.data.with_category, recipe.data.max_pixels,
                          with_length=recipe.training.train_sampling_strategy == "group_by_length")


def check_answers_survive_truncation(trainer, prepared: Prepared, batch_size: int = 32) -> None:
    """Run every row through the trainer's own collator: each must keep at least one supervised (answer) token.

    An example longer than ``training.max_length`` loses its answer to truncation and would train on nothing.
    """
    dataset = trainer.train_dataset
    for start in range(0, len(dataset), batch_size):
        rows = [dataset[index] for index in range(start, min(start + batch_size, len(dataset)))]
        labels = trainer.data_collator(rows)["labels"]
        for offset, row_labels in enumerate(labels):
            if not (row_labels != -100).any():
                example = prepared.data.examples[start + offset]
                raise RecipeError(
                    f"data: example {example.source}/{example.source_id} is longer than training.max_length="
                    f"{prepared.recipe.training.max_length} tokens, so its answer is cut off; raise "
                    "training.max_length or lower data.max_pixels"
                )


def train(recipe: Recipe | str | os.PathLike, overrides: dict[str, Any] | None = None, *, resume: bool = False,
          merge: bool = False) -> TrainResult:
    """Train a judge from a recipe (object or YAML path) with dotted-key overrides; see `TrainResult`.

    ``resume=True`` continues from the last checkpoint in ``output_dir`` (an error when there is none).
    Raises `RecipeError` before any weights are loaded when the recipe, model, LoRA targets or data are wrong.
    """
    recipe = resolve_recipe(recipe, overrides)
    output_dir = Path(recipe.training.output_dir)
    checkpoint = _last_checkpoint(str(output_dir)) if resume else None
    if resume and checkpoint is None:
        raise RecipeError(f"--resume: no checkpoint-* folder in {output_dir}; run without --resume to start")
    if not resume and (output_dir / METADATA_FILE).exists():
        raise RecipeError(f"output_dir {output_dir} already holds a finished judge ({METADATA_FILE}); choose another "
                          "output_dir or delete it")
    prepared = prepare(recipe)
    trainer = build_trainer(prepared)
    check_answers_survive_truncation(trainer, prepared)
    outcome = trainer.train(resume_from_checkpoint=checkpoint)
    adapter_dir = output_dir / ADAPTER_SUBDIR
    trainer.save_model(str(adapter_dir))
    trainer.processing_class.save_pretrained(str(adapter_dir))
    merged_dir = _merge(recipe, adapter_dir, trainer.processing_class, output_dir / MERGED_SUBDIR) if merge else None
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    final_loss = losses[-1] if losses else outcome.training_loss
    metadata = build_metadata(recipe, prepared.data, final_loss=final_loss, global_step=trainer.state.global_step,
                              adapter_dir=adapter_dir, merged_dir=merged_dir)
    metadata_path = write_metadata(output_dir / METADATA_FILE, metadata)
    return TrainResult(output_dir, adapter_dir, metadata_path, final_loss, trainer.state.global_step, merged_dir)


def _merge(recipe: Recipe, adapter_dir: Path, processor, target: Path) -> Path:
    """Merged full weights: the base model reloaded unquantised with the adapter folded in."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from local_models import resolve_model

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    base = AutoModelForImageTextToText.from_pretrained(resolve_model(recipe.model.model_name_or_path),
                                                       revision=recipe.model.model_revision, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(target))
    processor.save_pretrained(str(target))
    return target


# ----------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recipes.train",
        description="Fine-tune a VLM safety judge (QLoRA, trl SFTTrainer) from a recipe YAML. Any recipe key can be "
                    "overridden with --section.key VALUE (e.g. --training.max_steps 10 --data.balance none).",
    )
    parser.add_argument("recipe", help="recipe YAML, e.g. recipes/tiny_llava/qlora.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    parser.add_argument("--merge", action="store_true", help="also write merged full weights to <output_dir>/merged")
    parser.add_argument("--check", action="store_true",
                        help="only validate recipe, architecture, LoRA targets and data; load no weights, train nothing")
    parser.add_argument("--tiny", action="store_true",
                        help="smoke-test the recipe on a small random model of the same architecture on this machine: "
                             "2 optimiser steps, adapter and metadata (see docs/recipes.md)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        overrides = parse_override_args(rest)
        if args.tiny:
            from recipes.tiny import tiny_overrides

            overrides = {**tiny_overrides(resolve_recipe(args.recipe, overrides)), **overrides}
        if args.check:
            prepared = prepare(resolve_recipe(args.recipe, overrides))
            print(f"ok: {len(prepared.data.examples)} examples {prepared.data.label_counts}, "
                  f"LoRA on {len(prepared.lora_modules)} modules")
            return 0
        result = train(args.recipe, overrides, resume=args.resume, merge=args.merge)
    except RecipeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"adapter: {result.adapter_dir}\nmetadata: {result.metadata_path}\nfinal loss: {result.final_loss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
