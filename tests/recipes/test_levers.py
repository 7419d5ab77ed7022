"""Training levers the GPU suite measures; every one is off by default (recipes keep their shipped behaviour)."""

from __future__ import annotations

import pytest
from PIL import Image

from recipes.config import RecipeError, load_recipe
from recipes.data import LENGTH_COLUMN, estimated_length, to_sft_row
from recipes.train import build_trainer, prepare, sft_config

from .conftest import TINY_RECIPE


def _tiny(curated_release, **overrides):
    return load_recipe(TINY_RECIPE, {
        "data.sources": [{"name": "rms", "options": {"release": str(curated_release)}}],
        "data.max_train_samples": 4, **overrides})


def test_levers_are_off_in_every_shipped_recipe(repo_root):
    for path in sorted((repo_root / "recipes").glob("*/qlora.yaml")):
        training = load_recipe(path).training
        assert training.group_by_length is False and training.checkpoint_every_n_layers == 1, path


def test_estimated_length_grows_with_text_and_pixels(curated_release):
    example = prepare(_tiny(curated_release)).data.examples[0]
    row = to_sft_row(example, with_category=False, max_pixels=None)
    small = {**row, "images": [Image.new("RGB", (56, 56))]}
    large = {**row, "images": [Image.new("RGB", (560, 560))]}
    assert estimated_length(large) - estimated_length(small) == (560 * 560 - 56 * 56) // 784
    longer = {**small, "completion": [{"role": "assistant", "content": [{"type": "text", "text": "x" * 400}]}]}
    assert estimated_length(longer) > estimated_length(small)


def test_group_by_length_gives_the_trainer_a_length_grouped_sampler(curated_release, tmp_path):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    recipe = _tiny(curated_release, **{"training.group_by_length": True, "output_dir": str(tmp_path / "g")})
    prepared = prepare(recipe)
    trainer = build_trainer(prepared)
    assert trainer.train_dataset[LENGTH_COLUMN] == [
        estimated_length(to_sft_row(e, False, recipe.data.max_pixels)) for e in prepared.data.examples]
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    assert LENGTH_COLUMN not in batch  # the collator reads prompt, completion and images only


def test_checkpoint_every_n_layers_reaches_the_training_arguments(curated_release):
    args = sft_config(_tiny(curated_release, **{"training.gradient_checkpointing": True,
                                                "training.checkpoint_every_n_layers": 2}), use_cpu=True)
    assert args.activation_checkpointing_kwargs == {"every_n_layers": 2}
    assert sft_config(_tiny(curated_release), use_cpu=True).activation_checkpointing_kwargs is None


def test_checkpoint_every_n_layers_below_one_is_refused(curated_release):
    with pytest.raises(RecipeError, match="training.checkpoint_every_n_layers must be at least 1, got 0"):
        _tiny(curated_release, **{"training.checkpoint_every_n_layers": 0})


def test_a_trainer_can_reuse_a_loaded_model_and_built_rows(curated_release, tmp_path):
    from recipes.model import load_model_and_processor
    from recipes.train import sft_dataset

    recipe = _tiny(curated_release, **{"output_dir": str(tmp_path / "r")})
    prepared = prepare(recipe)
    model, processor = load_model_and_processor(recipe)
    rows = sft_dataset(prepared)
    trainer = build_trainer(prepared, (model, processor), rows)
    assert trainer.train_dataset is rows and trainer.processing_class is processor
    assert trainer.model.get_base_model() is model  # LoRA wrapped around the model passed in
    assert trainer.model.unload() is model
