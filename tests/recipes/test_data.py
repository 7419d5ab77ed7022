"""Training data: sources mixed, labels balanced, caps that keep the balance, seeded; errors before training."""

from __future__ import annotations

import io
from collections import Counter

import pytest

from judging.records import JudgeExample
from recipes.config import DataConfig, RecipeError, SourceSpec, load_recipe
from recipes.data import (
    CappedImages,
    SourceStats,
    TrainingData,
    balance,
    build_training_data,
    check_training_data,
    to_sft_dataset,
    to_sft_row,
)
from recipes.train import prepare

from .conftest import TINY_RECIPE


def _examples(safe: int, unsafe: int) -> list[JudgeExample]:
    return [JudgeExample(image=None, text=f"t{i}", label="safe" if i < safe else "unsafe", source="x", source_id=str(i))
            for i in range(safe + unsafe)]


def test_balance_downsamples_or_upsamples_to_equal_labels():
    examples = _examples(safe=3, unsafe=10)
    assert Counter(e.label for e in balance(examples, "downsample", 0)) == {"safe": 3, "unsafe": 3}
    assert Counter(e.label for e in balance(examples, "upsample", 0)) == {"safe": 10, "unsafe": 10}
    assert balance(examples, "none", 0) == examples


def _rms(release, **extra) -> DataConfig:
    return DataConfig(sources=[SourceSpec(name="rms", options={"release": str(release)})], **extra)


def test_caps_fraction_and_seed(curated_release):
    full = build_training_data(_rms(curated_release), seed=0)
    assert full.label_counts["safe"] == full.label_counts["unsafe"]
    capped = build_training_data(_rms(curated_release, max_train_samples=10), seed=0)
    assert capped.label_counts == {"safe": 5, "unsafe": 5}
    half = build_training_data(_rms(curated_release, train_fraction=0.5), seed=0)
    assert len(half.examples) == round(len(full.examples) / 2)
    again = build_training_data(_rms(curated_release, max_train_samples=10), seed=0)
    other = build_training_data(_rms(curated_release, max_train_samples=10), seed=1)
    assert [e.source_id for e in again.examples] == [e.source_id for e in capped.examples]
    assert [e.source_id for e in other.examples] != [e.source_id for e in capped.examples]
    assert capped.sources[0].read == {"safe": full.label_counts["safe"], "unsafe": full.label_counts["unsafe"]}
    assert capped.sources[0].used == capped.label_counts


def test_sources_mix_and_each_reports_its_counts(curated_release, shared_dir):
    config = DataConfig(task="response", balance="none", sources=[
        SourceSpec(name="rms", options={"release": str(curated_release)}),
        SourceSpec(name="vlguard", max_samples=5),
    ])
    data = build_training_data(config, seed=0)
    by_name = {s.name: s for s in data.sources}
    assert by_name["vlguard"].used == {"safe": 5} and by_name["vlguard"].read["safe"] > 5
    assert len(by_name["vlguard"].missing_images) == 5
    with pytest.raises(RecipeError, match=r"data.sources\[vlguard\]: 5 example\(s\) have no image .*image_root"):
        check_training_data(data, config)


def test_single_class_data_is_refused_unless_allowed():
    from PIL import Image

    examples = [JudgeExample(image=Image.new("RGB", (8, 8)), text=f"t{i}", label="safe", source="vlguard",
                             source_id=str(i), response="I can't help with that.") for i in range(3)]
    data = TrainingData(examples, [SourceStats("vlguard", "train", {}, {"safe": 3})])
    config = DataConfig(task="response", sources=[SourceSpec(name="vlguard")])
    with pytest.raises(RecipeError, match=r"every training example is labelled \['safe'\] \(vlguard/train\)"):
        check_training_data(data, config)
    check_training_data(data, config.model_copy(update={"allow_single_class": True}))


def test_prepare_fails_before_loading_weights_on_bad_data_or_sources():
    with pytest.raises(RecipeError, match=r"unknown dataset source 'vlgaurd'"):
        prepare(load_recipe(TINY_RECIPE, {"data.sources": [{"name": "vlgaurd"}]}))
    with pytest.raises(RecipeError, match=r"'vlguard' has no split 'validation'"):
        prepare(load_recipe(TINY_RECIPE, {"data.sources": [{"name": "vlguard", "split": "validation"}]}))
    with pytest.raises(RecipeError, match=r"data.sources\[vlguard\]: .* have no image"):
        prepare(load_recipe(TINY_RECIPE, {"data.sources": [{"name": "vlguard", "max_samples": 4}]}))


def test_sft_rows_carry_the_judge_prompt_the_answer_and_the_photo_as_stored(curated_release):
    data = build_training_data(_rms(curated_release, max_train_samples=2), seed=0)
    row = to_sft_row(data.examples[0], with_category=False)
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][1]["content"][0] == {"type": "image"}
    assert row["completion"][0]["content"][0]["text"] == data.examples[0].label
    assert row["images"] == [data.examples[0].image]  # the release's own bytes, not a re-encoding


def test_the_dataset_keeps_the_original_bytes_and_batches_get_images_capped_as_they_are_built(curated_release):
    from PIL import Image

    data = build_training_data(_rms(curated_release, max_train_samples=2), seed=0)
    dataset = to_sft_dataset(data.examples, with_category=False, max_pixels=4096)
    stored = dataset[0]["images"][0]
    assert stored["bytes"] == data.examples[0].image["bytes"]  # byte for byte
    assert Image.open(io.BytesIO(stored["bytes"])).format == "JPEG"
    seen = []
    collate = CappedImages(lambda rows: seen.extend(rows) or "batch", max_pixels=4096)
    assert collate([dataset[0], dataset[1]]) == "batch"
    for row in seen:
        (image,) = row["images"]
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.width * image.height <= 4096
