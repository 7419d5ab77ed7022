"""The architecture registry's processors: PIL image processors and no video processor where torchvision is absent
(as in this venv); a processor that needs torchvision fails with one line naming the package and the command."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import transformers

from recipes.architectures import ArchitectureError, load_processor, torchvision_available
from recipes.tiny import tiny_model_path

pytestmark = pytest.mark.skipif(torchvision_available(), reason="checks the behaviour without torchvision")


def test_qwen2_5_vl_processor_loads_without_torchvision_and_saves_and_reloads(tmp_path):
    processor = load_processor(str(tiny_model_path("qwen2_5_vl")), "qwen2_5_vl")
    assert isinstance(processor, transformers.Qwen2_5_VLProcessor)
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert not hasattr(processor, "video_processor")
    processor.save_pretrained(tmp_path)
    again = load_processor(str(tmp_path), "qwen2_5_vl")
    assert again.chat_template == processor.chat_template


def test_a_processor_that_needs_torchvision_fails_with_one_line_naming_the_package_and_the_command(tmp_path):
    model = tmp_path / "video-model"
    shutil.copytree(tiny_model_path("qwen2_5_vl"), model)  # then made a model whose processor has a video processor
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "model_type": "qwen3_vl"}))
    processor = json.loads((model / "processor_config.json").read_text())
    processor.update(processor_class="Qwen3VLProcessor", video_processor={"video_processor_type": "Qwen3VLVideoProcessor"})
    (model / "processor_config.json").write_text(json.dumps(processor))
    with pytest.raises(ArchitectureError) as raised:
        load_processor(str(model), "qwen3_vl")
    message = str(raised.value)
    assert "\n" not in message
    assert "needs torchvision, which is not installed here" in message
    assert re.search(r"pip install 'torchvision==0\.\d+\.\*' \(the release matching torch 2\.", message)
    assert "scripts/setup.sh" in message
