"""Training levers the GPU suite measures are trainer arguments; every one is off in the shipped recipes."""

from __future__ import annotations

import io

from PIL import Image

from recipes.config import load_recipe
from recipes.data import LENGTH_COLUMN, estimated_length, to_sft_row
from recipes.train import build_trainer, prepare

from .conftest import TINY_RECIPE


def _tiny(curated_release, **overrides):
    return load_recipe(TINY_RECIPE, {
        "data.sources": [{"name": "rms", "options": {"release": str(curated_release)}}],
        "data.max_train_samples": 4, **overrides})


def _jpeg(width: int, height: int) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="JPEG")
    return {"bytes": buffer.getvalue(), "path": None}


def test_levers_are_off_in_every_shipped_recipe(repo_root):
    for path in sorted((repo_root / "recipes").glob("*/qlora.yaml")):
        training = load_recipe(path).training
        assert training.train_sampling_strategy == "random" and training.activation_checkpointing_kwargs is None, path


def test_estimated_length_grows_with_text_and_pixels_read_from_the_header(curated_release):
    example = prepare(_tiny(curated_release)).data.examples[0]
    row = to_sft_row(example, with_category=False)
    small = {**row, "images": [_jpeg(56, 56)]}
    large = {**row, "images": [_jpeg(560, 560)]}
    assert estimated_length(large, None) - estimated_length(small, None) == (560 * 560 - 56 * 56) // 784
    assert estimated_length(large, 56 * 56) == estimated_length(small, None)  # the cap applies
    longer = {**small, "completion": [{"role": "assistant", "content": [{"type": "text", "text": "x" * 400}]}]}
    assert estimated_length(longer, None) > estimated_length(small, None)


def test_group_by_length_gives_the_trainer_a_length_grouped_sampler(curated_release, tmp_path):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    recipe = _tiny(curated_release, **{"training.train_sampling_strategy": "group_by_length",
                                       "training.output_dir": str(tmp_path / "g")})
    prepared = prepare(recipe)
    trainer = build_trainer(prepared)
    assert trainer.train_dataset[LENGTH_COLUMN] == [
        estimated_length(to_sft_row(e, False), recipe.data.max_pixels) for e in prepared.data.examples]
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    assert LENGTH_COLUMN not in batch  # the collator reads prompt, completion and images only


def test_checkpointing_every_second_layer_is_the_trainers_own_argument(curated_release):
    recipe = _tiny(curated_release, **{"training.activation_checkpointing": True,
                                       "training.activation_checkpointing_kwargs": {"every_n_layers": 2}})
    assert recipe.training.activation_checkpointing_kwargs == {"every_n_layers": 2}
    assert recipe.training.gradient_checkpointing is True  # what peft's k-bit preparation reads


def test_a_trainer_can_reuse_a_loaded_model_and_built_rows(curated_release, tmp_path):
    from recipes.model import load_model_and_processor
    from recipes.train import sft_dataset

    recipe = _tiny(curated_release, **{"training.output_dir": str(tmp_path / "r")})
    prepared = prepare(recipe)
    model, processor = load_model_and_processor(recipe.model, prepared.architecture, gradient_checkpointing=False)
    rows = sft_dataset(prepared)
    trainer = build_trainer(prepared, (model, processor), rows)
    assert trainer.train_dataset is rows and trainer.processing_class is processor
    assert trainer.model.get_base_model() is model  # LoRA wrapped around the model passed in
    assert trainer.model.unload() is model
