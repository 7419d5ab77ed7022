"""End to end on the tiny LLaVA (CPU): trl SFTTrainer + peft LoRA; answer-only labels; adapter; resume; 4-bit."""

from __future__ import annotations

import json

import pytest
import torch

from judging.format import prompt_messages, verdict_token_ids
from local_models import tiny_llava_path
from recipes.config import RecipeError, load_recipe
from recipes.data import build_training_data, load_image
from recipes.train import build_trainer, prepare, train

from .conftest import TINY_RECIPE


def _losses(output_dir, checkpoint):
    state = json.loads((output_dir / checkpoint / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def test_loss_on_a_repeated_batch_goes_down(trained):
    losses = _losses(trained.output_dir, "checkpoint-4")
    assert len(losses) == 4 and trained.global_step == 4
    assert losses[-1] < losses[0] / 2


def test_metadata_records_provenance(trained, curated_release):
    metadata = json.loads(trained.metadata_path.read_text())
    assert metadata["base_model"]["name_or_path"] == "tiny-llava"
    assert metadata["recipe_path"].endswith("tiny_llava/qlora.yaml")
    assert metadata["recipe"]["training"]["max_steps"] == 4  # the resolved recipe, overrides applied
    assert metadata["data"]["label_counts"] == {"safe": 1, "unsafe": 1}
    source = metadata["data"]["sources"][0]
    assert source["name"] == "rms" and source["provenance"]["release"] == str(curated_release)
    assert source["used_label_counts"] == {"safe": 1, "unsafe": 1}
    assert metadata["seed"] == 0 and metadata["final_train_loss"] == pytest.approx(trained.final_loss)
    assert metadata["git_commit"] and metadata["library_versions"]["trl"] and metadata["library_versions"]["peft"]
    assert (trained.adapter_dir / "adapter_config.json").is_file()


def _verdict_mass(model, processor, example):
    text = processor.apply_chat_template(prompt_messages(example), add_generation_prompt=True)
    inputs = processor(images=[load_image(example.image, None)], text=[text], return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**inputs).logits[0, -1].softmax(-1)
    tokens = verdict_token_ids(processor.tokenizer)
    return float(probabilities[tokens.safe] + probabilities[tokens.unsafe]), probabilities


def test_adapter_reloads_and_changes_the_judges_output(trained, curated_release):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(trained.adapter_dir)
    example = build_training_data(load_recipe(TINY_RECIPE, {
        "data.sources": [{"name": "rms", "options": {"release": str(curated_release)}}]}).data, 0).examples[0]
    base = AutoModelForImageTextToText.from_pretrained(tiny_llava_path()).eval()
    base_mass, base_probs = _verdict_mass(base, processor, example)
    judge = PeftModel.from_pretrained(base, str(trained.adapter_dir)).eval()
    judge_mass, judge_probs = _verdict_mass(judge, processor, example)
    assert not torch.allclose(base_probs, judge_probs, atol=1e-4)
    assert judge_mass > 0.5 > base_mass  # the judge now answers with a verdict first


def test_only_the_answer_tokens_carry_labels(curated_release):
    recipe = load_recipe(TINY_RECIPE, {
        "data.sources": [{"name": "rms", "options": {"release": str(curated_release)}}],
        "data.max_train_samples": 2, "training.max_steps": 1})
    trainer = build_trainer(prepare(recipe))
    rows = [trainer.train_dataset[i] for i in range(2)]
    answers = [row["completion"][0]["content"][0]["text"] for row in rows]
    batch = trainer.data_collator(rows)
    tokenizer = trainer.processing_class.tokenizer
    image_token = trainer.model.config.image_token_index
    for index, answer in enumerate(answers):
        labels = batch["labels"][index]
        supervised = labels[labels != -100]
        assert tokenizer.decode(supervised).strip() == f"{answer}<|im_end|>"
        assert image_token not in supervised.tolist()
        assert (batch["input_ids"][index] == image_token).any()  # the image is in the prompt, unsupervised


def test_resume_continues_from_the_last_checkpoint_and_merge_writes_full_weights(trained, tiny_overrides):
    from transformers import AutoModelForImageTextToText

    first = _losses(trained.output_dir, "checkpoint-4")
    result = train(TINY_RECIPE, {**tiny_overrides, "training.output_dir": str(trained.output_dir), "training.max_steps": 6},
                   resume=True, merge=True)
    assert result.global_step == 6
    resumed = _losses(trained.output_dir, "checkpoint-6")
    assert resumed[:4] == first and len(resumed) == 6  # steps 1-4 come from the checkpoint, 5-6 are new
    merged = AutoModelForImageTextToText.from_pretrained(result.merged_dir)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert json.loads(result.metadata_path.read_text())["merged_dir"] == str(result.merged_dir)


def test_resume_without_checkpoint_and_rerun_over_a_finished_judge_are_refused(tmp_path, trained, tiny_overrides):
    with pytest.raises(RecipeError, match="no checkpoint-"):
        train(TINY_RECIPE, {**tiny_overrides, "training.output_dir": str(tmp_path / "fresh")}, resume=True)
    with pytest.raises(RecipeError, match="already holds a finished judge"):
        train(TINY_RECIPE, {**tiny_overrides, "training.output_dir": str(trained.output_dir)})


def test_4bit_nf4_loads_on_cpu_and_trains_a_step(curated_release, tmp_path):
    """bitsandbytes' CPU backend: NF4 + double quantisation load and train. The compute dtype is the model's
    dtype (trl's quantization config), float32 in the tiny recipe: bf16 matmuls are several times slower on
    CPUs without bf16 units (bf16 also passes)."""
    from bitsandbytes.nn import Linear4bit

    recipe = load_recipe(TINY_RECIPE, {
        "data.sources": [{"name": "rms", "options": {"release": str(curated_release)}}],
        "model.load_in_4bit": True, "data.max_train_samples": 2, "training.per_device_train_batch_size": 1,
        "training.max_steps": 1, "training.output_dir": str(tmp_path / "q4")})
    trainer = build_trainer(prepare(recipe))
    quantized = [m for n, m in trainer.model.named_modules() if isinstance(m, Linear4bit)]
    assert quantized and quantized[0].weight.quant_type == "nf4"
    assert quantized[0].weight.quant_state.nested  # double quantisation
    outcome = trainer.train()
    assert trainer.state.global_step == 1 and torch.isfinite(torch.tensor(outcome.training_loss))


def test_cli_check_validates_without_training(curated_release, capsys):
    from recipes.train import main

    code = main([str(TINY_RECIPE), "--check", "--data.sources",
                 f"[{{name: rms, options: {{release: '{curated_release}'}}}}]"])
    assert code == 0 and "ok:" in capsys.readouterr().out
    assert main([str(TINY_RECIPE), "--check", "--model.lora_target_modules", "[qkv_proj, v_proj]"]) == 2
    assert "'qkv_proj' is not a module of 'tiny-llava'" in capsys.readouterr().err


def test_an_example_whose_answer_would_be_truncated_is_refused_before_training(curated_release, tmp_path):
    from recipes.train import check_answers_survive_truncation

    recipe = load_recipe(TINY_RECIPE, {
        "data.sources": [{"name": "rms", "options": {"release": str(curated_release)}}],
        "data.max_train_samples": 2, "training.max_length": 40, "training.output_dir": str(tmp_path / "short")})
    prepared = prepare(recipe)
    trainer = build_trainer(prepared)
    with pytest.raises(RecipeError, match=r"example rms/\S+ is longer than training.max_length=40 tokens"):
        check_answers_survive_truncation(trainer, prepared)
    assert trainer.state.global_step == 0
