"""Every recipe in the repo parses into trl's own configs, names a registered architecture and LoRA targets that exist
in its language model; any SFTConfig / ModelConfig field works from YAML; mistakes are one line naming the key.

Architectures are instantiated on the meta device from their configs (local dir or the offline table of the
public models' configs): module names are checked without any weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from trl import ModelConfig, SFTConfig

from recipes.architectures import ArchitectureError, architecture, lora_modules, model_config, module_names
from recipes.config import RecipeError, load_recipe, parse_override_args
from recipes.model import lora_config, lora_targets
from recipes.train import prepare

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(path for path in (REPO_ROOT / "recipes").glob("*/*.yaml") if path.parent.name != "accelerate")
TINY = REPO_ROOT / "recipes" / "tiny_llava" / "qlora.yaml"


def test_the_expected_recipes_exist():
    names = {path.parent.name for path in RECIPES}
    assert {"qwen2_5_vl_7b", "qwen2_5_vl_3b", "llava_1_5_7b", "idefics3_8b", "tiny_llava"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.parent.name)
def test_recipe_parses_into_trl_configs_and_its_lora_targets_exist_in_the_language_model(path):
    recipe = load_recipe(path)
    assert isinstance(recipe.model, ModelConfig) and isinstance(recipe.training, SFTConfig)
    assert recipe.training.completion_only_loss and recipe.training.remove_unused_columns is False
    config = model_config(recipe.model.model_name_or_path, recipe.model.model_revision)
    arch = architecture(config.model_type)
    wrapped = lora_modules(lora_targets(recipe.model, arch), arch.vision_modules, module_names(config), path.name)
    assert not any(part in name for name in wrapped for part in ("visual", "vision_tower", "vision_model"))
    assert len(wrapped) == config.get_text_config().num_hidden_layers * len(recipe.model.lora_target_modules)
    if recipe.model.model_name_or_path != "tiny-llava":
        m = recipe.model
        assert (m.load_in_4bit, m.bnb_4bit_quant_type, m.use_bnb_nested_quant, m.dtype) == (True, "nf4", True, "bfloat16")


def test_any_sft_config_field_works_from_yaml_including_ones_the_old_mapping_lacked():
    recipe = load_recipe(TINY, {"training.neftune_noise_alpha": 5.0, "training.lr_scheduler_kwargs": {"min_lr": 1e-5},
                                "training.max_grad_norm": 0.5, "model.use_rslora": True})
    assert recipe.training.neftune_noise_alpha == 5.0 and recipe.training.lr_scheduler_kwargs == {"min_lr": 1e-5}
    assert recipe.training.max_grad_norm == 0.5
    assert lora_config(recipe.model, architecture("llava")).use_rslora is True


def test_the_trainers_progress_bar_is_on_unless_logging_is_quieter_than_warnings():
    from transformers.utils import logging

    before = logging.get_verbosity()
    logging.set_verbosity_warning()  # the default of a command line (the tests run at error level)
    try:
        assert load_recipe(TINY).training.disable_tqdm is False
    finally:
        logging.set_verbosity(before)


def test_an_unknown_key_is_one_line_naming_file_section_and_key_with_a_suggestion(tmp_path):
    text = TINY.read_text().replace("learning_rate:", "learnig_rate:")
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError) as raised:
        load_recipe(path)
    assert str(raised.value) == (f"{path}: training.learnig_rate: unknown key (did you mean 'learning_rate'?); "
                                 "it is not a field of SFTConfig")


def test_a_top_level_trainer_key_is_pointed_to_its_section():
    with pytest.raises(RecipeError, match=r"qlora.yaml: output_dir: unknown key \(it belongs in training.output_dir\)"):
        load_recipe(TINY, {"output_dir": "runs/x"})


def test_wrong_types_and_values_are_named_by_key():
    cases = {
        "training.max_steps": ("many", r"training.max_steps: Input should be a valid integer \(got 'many'\)"),
        "training.lr_scheduler_type": ("cosin", r"training.lr_scheduler_type: must be one of linear, cosine,"),
        "model.lora_r": ("16", r"model.lora_r: Input should be a valid integer"),
        "model.vision_attention": ("flash", r"model.vision_attention: Input should be 'per_chunk' or 'grouped'"),
        "data.balance": ("equal", r"data.balance: Input should be 'none', 'downsample' or 'upsample'"),
        "data.sources": ([{"nme": "rms"}], r"data.sources.0.nme: unknown key"),
        "data.train_fraction": (0.0, r"data.train_fraction: Input should be greater than 0"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(RecipeError, match=message):
            load_recipe(TINY, {key: value})


def test_a_config_class_refusal_is_one_line_naming_the_section():
    with pytest.raises(RecipeError, match=r"qlora.yaml: model: You can't use 8 bit and 4 bit precision at the same time"):
        load_recipe(TINY, {"model.load_in_4bit": True, "model.load_in_8bit": True})


def test_overrides_use_dotted_keys_and_yaml_values():
    overrides = parse_override_args(["--training.max_steps", "3", "--model.lora_target_modules=[q_proj]",
                                     "--training.seed", "7"])
    assert overrides == {"training.max_steps": 3, "model.lora_target_modules": ["q_proj"], "training.seed": 7}
    recipe = load_recipe(TINY, overrides)
    assert (recipe.training.max_steps, recipe.training.seed) == (3, 7)
    assert lora_targets(recipe.model, architecture("llava")) == ["q_proj"]  # trl's one-item unwrapping undone
    assert recipe.training.learning_rate == 1e-3  # untouched keys keep the file's value
    assert recipe.with_overrides({"training.max_steps": 5}).training.max_steps == 5


def test_a_target_module_missing_from_the_architecture_is_named():
    recipe = load_recipe(REPO_ROOT / "recipes" / "qwen2_5_vl_7b" / "qlora.yaml",
                         {"model.lora_target_modules": ["q_proj", "c_attn"], "data.max_train_samples": 2})
    with pytest.raises(RecipeError, match=r"model: lora_target_modules: 'c_attn' is not a module of "
                                          r"'Qwen/Qwen2.5-VL-7B-Instruct' outside the vision modules"):
        prepare(recipe)


def test_text_only_and_unknown_models_are_refused():
    with pytest.raises(ArchitectureError, match=r"'llama' model; the registered vision-language architectures are"):
        architecture(model_config("smollm2").model_type, "smollm2")
    with pytest.raises(ArchitectureError, match=r"cannot read its config"):
        model_config("nobody/no-such-vlm")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.parent.name)
def test_every_recipe_passes_the_pre_training_checks_on_the_committed_sample_release(path, sample_release):
    import pyarrow.parquet as pq

    import rms_dataset as rms

    pairs = pq.read_table(sample_release / rms.PAIRS / rms.shard_name("train", 0, 1)).to_pylist()
    twins = sum(1 for row in pairs if (row["safe_twin_text"] or "").strip())
    prepared = prepare(load_recipe(path))  # data.sources: rms with the default release (sample_release/)
    assert prepared.data.label_counts == {"safe": min(len(pairs), twins), "unsafe": min(len(pairs), twins)}
    assert prepared.data.sources[0].provenance["release"] == str(sample_release)
