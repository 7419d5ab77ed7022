"""Every recipe in the repo parses, names a known architecture and LoRA targets that exist in it.

Architectures are instantiated on the meta device from their configs (local dir or the offline table of the
public models' configs): module names are checked without any weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recipes.architectures import check_architecture, check_target_modules, model_config, module_names
from recipes.config import RecipeError, load_recipe, parse_override_args

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO_ROOT / "recipes").glob("*/*.yaml"))
RECIPES = [path for path in RECIPES if path.parent.name != "accelerate"]


def test_the_expected_recipes_exist():
    names = {path.parent.name for path in RECIPES}
    assert {"qwen2_5_vl_7b", "qwen2_5_vl_3b", "llava_1_5_7b", "idefics3_8b", "tiny_llava"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.parent.name)
def test_recipe_parses_and_its_lora_targets_exist_in_the_language_model(path):
    recipe = load_recipe(path)
    config = model_config(recipe.model.name_or_path, recipe.model.revision)
    check_architecture(config, recipe.model.name_or_path)
    wrapped = check_target_modules(recipe.lora, module_names(config), recipe.model.name_or_path)
    assert wrapped, "LoRA would wrap nothing"
    assert not any(part in name for name in wrapped for part in ("visual", "vision_tower", "vision_model"))
    text_layers = config.get_text_config().num_hidden_layers
    assert len(wrapped) == text_layers * len(recipe.lora.target_modules)
    if recipe.model.name_or_path != "tiny-llava":
        q = recipe.quantization
        assert (q.load_in_4bit, q.quant_type, q.double_quant, q.compute_dtype) == (True, "nf4", True, "bfloat16")


def test_unknown_key_names_key_and_file_with_a_suggestion(tmp_path):
    text = (REPO_ROOT / "recipes" / "tiny_llava" / "qlora.yaml").read_text().replace("learning_rate:", "learnig_rate:")
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=r"typo.yaml: unknown key 'training.learnig_rate' \(did you mean 'learning_rate'\?\)"):
        load_recipe(path)


def test_wrong_types_and_values_are_named():
    tiny = REPO_ROOT / "recipes" / "tiny_llava" / "qlora.yaml"
    with pytest.raises(RecipeError, match=r"training.max_steps must be int, got 'many'"):
        load_recipe(tiny, {"training.max_steps": "many"})
    with pytest.raises(RecipeError, match=r"data.balance must be one of"):
        load_recipe(tiny, {"data.balance": "equal"})
    with pytest.raises(RecipeError, match=r"data.sources\[0\].nme"):
        load_recipe(tiny, {"data.sources": [{"nme": "rms"}]})


def test_overrides_use_dotted_keys_and_yaml_values():
    overrides = parse_override_args(["--training.max_steps", "3", "--lora.target_modules=[q_proj]", "--seed", "7"])
    assert overrides == {"training.max_steps": 3, "lora.target_modules": ["q_proj"], "seed": 7}
    recipe = load_recipe(REPO_ROOT / "recipes" / "tiny_llava" / "qlora.yaml", overrides)
    assert (recipe.training.max_steps, recipe.lora.target_modules, recipe.seed) == (3, ["q_proj"], 7)
    assert recipe.training.learning_rate == 1e-3  # untouched keys keep the file's value


def test_a_target_module_missing_from_the_architecture_is_named():
    recipe = load_recipe(REPO_ROOT / "recipes" / "qwen2_5_vl_7b" / "qlora.yaml", {"lora.target_modules": ["q_proj", "c_attn"]})
    config = model_config(recipe.model.name_or_path)
    with pytest.raises(RecipeError, match=r"'c_attn' is not a module of 'Qwen/Qwen2.5-VL-7B-Instruct'"):
        check_target_modules(recipe.lora, module_names(config), recipe.model.name_or_path)


def test_text_only_and_unknown_models_are_refused():
    with pytest.raises(RecipeError, match=r"'smollm2' is a 'llama' model; recipes support"):
        check_architecture(model_config("smollm2"), "smollm2")
    with pytest.raises(RecipeError, match=r"cannot read its config"):
        model_config("nobody/no-such-vlm")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.parent.name)
def test_every_recipe_passes_the_pre_training_checks_on_the_committed_sample_release(path, sample_release):
    import pyarrow.parquet as pq

    import rms_dataset as rms
    from recipes.train import prepare

    pairs = pq.read_table(sample_release / rms.PAIRS / rms.shard_name("train", 0, 1)).to_pylist()
    twins = sum(1 for row in pairs if (row["safe_twin_text"] or "").strip())
    prepared = prepare(load_recipe(path))  # data.sources: rms with the default release (sample_release/)
    assert prepared.data.label_counts == {"safe": min(len(pairs), twins), "unsafe": min(len(pairs), twins)}
    assert prepared.data.sources[0].provenance["release"] == str(sample_release)
