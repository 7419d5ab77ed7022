"""``--tiny``: every shipped recipe trains 2 steps on a small random model of its own architecture (same model, config
and processor classes, the real checkpoint's chat template), leaves an adapter with its metadata, and the eval
scores it in fast and generative modes with label tokens read from that template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers

from recipes.architectures import architecture, load_processor, model_config
from recipes.config import load_recipe

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE_DIRS = sorted(path.parent for path in (REPO_ROOT / "recipes").glob("*/qlora.yaml"))


@pytest.mark.parametrize("recipe_dir", RECIPE_DIRS, ids=lambda p: p.name)
def test_tiny_trains_the_recipe_on_its_architecture_and_the_eval_scores_the_adapter(recipe_dir, tmp_path):
    from eval.score import main as score
    from recipes.train import main as train

    recipe_path = recipe_dir / "qlora.yaml"
    out = tmp_path / "run"
    assert train([str(recipe_path), "--tiny", "--training.output_dir", str(out)]) == 0

    metadata = json.loads((out / "judge_metadata.json").read_text())
    assert metadata["global_step"] == 2 and (out / "adapter" / "adapter_config.json").is_file()
    tiny_dir = metadata["base_model"]["name_or_path"]
    real = load_recipe(recipe_path).model
    real_config = model_config(real.model_name_or_path, real.model_revision)
    tiny_config = transformers.AutoConfig.from_pretrained(tiny_dir)
    assert type(tiny_config) is type(real_config)  # the same architecture class, small dimensions
    assert tiny_config.get_text_config().hidden_size < real_config.get_text_config().hidden_size
    arch = architecture(real_config.model_type)
    processor = load_processor(tiny_dir, arch.model_type)
    assert isinstance(processor, getattr(transformers, arch.processor_class))
    assert processor.chat_template == arch.chat_template()  # the real checkpoint's template
    assert metadata["recipe"]["model"]["lora_target_modules"] == real.lora_target_modules  # the recipe's own LoRA

    for mode in ("fast", "generative"):
        cell = tmp_path / f"{mode}.json"
        assert score(["--benchmark", "rms", "--option", f"release={REPO_ROOT / 'sample_release'}", "--limit", "2",
                      "--adapter", str(out / "adapter"), "--mode", mode, "--max-new-tokens", "4",
                      "--n-bootstrap", "10", "--out", str(cell)]) == 0
        result = json.loads(cell.read_text())
        assert result["n"] == 2 and result["mode"] == mode
        safe, unsafe = result["judge"]["label_tokens"]["ids"]
        tokenizer = processor.tokenizer
        # the template's own quirk: LLaVA-1.5 and Idefics3 answer after "ASSISTANT:"/"Assistant:" and a space
        assert tokenizer.decode([safe]) == arch.answer_prefix + "safe"
        assert tokenizer.decode([unsafe]).startswith(arch.answer_prefix + "uns")
