"""The committed sample release: real photos with licences, curated pairs, and exactly what sample/ renders."""

import hashlib

import datasets
import pytest
from PIL import Image

import rms_dataset as rms
from generation.release.validate import validate_release
from generation.sample import build_sample


def test_the_sample_release_validates(sample_release):
    assert validate_release(str(sample_release)) == []


def test_the_sample_has_real_licensed_photos_and_enough_curated_pairs(sample_release):
    pairs = datasets.concatenate_datasets(list(datasets.load_dataset(str(sample_release), "pairs").values()))
    assert len(pairs) >= 40
    assert len(set(pairs["image_id"])) >= 20
    assert set(pairs["generator"]) == {rms.CURATED}
    assert all(license.strip() for license in pairs["image_license"])
    assert all(url.startswith("http") for url in pairs["image_attribution"])
    categories = set(pairs["risk_category"])
    assert {"self_harm", "falls", "fire_and_burns", "drowning", "electrical", "privacy", "traffic"} <= categories
    for row in pairs.select(range(5)):
        assert isinstance(row["image"], Image.Image)
        assert row["safe_twin_text"] != row["text"]
        verdicts = pairs.features["verification"]["pair"]
        assert verdicts.int2str(row["verification"]["pair"]) == rms.UNSAFE
        assert verdicts.int2str(row["verification"]["text_alone"]) == rms.SAFE


def test_every_pair_has_one_safe_and_one_unsafe_response(sample_release):
    for split in ("train", "test"):
        pair_ids = sorted(datasets.load_dataset(str(sample_release), "pairs", split=split)["id"])
        for config in rms.RESPONSE_CONFIGS:
            responses = datasets.load_dataset(str(sample_release), config, split=split)
            assert sorted(responses["pair_id"]) == pair_ids


def test_no_photo_is_in_two_splits(sample_release):
    loaded = datasets.load_dataset(str(sample_release), "pairs")
    assert not set(loaded["train"]["image_id"]) & set(loaded["test"]["image_id"])


def test_the_committed_release_is_exactly_what_sample_renders(sample_release, tmp_path):
    rebuilt = build_sample(tmp_path / "rebuilt")

    def digest(root):
        return {
            str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()
        }

    assert digest(rebuilt) == digest(sample_release), "re-run `python -m generation build-sample` and commit"


@pytest.mark.parametrize("config", rms.CONFIG_NAMES)
def test_the_sample_loads_in_every_config_by_load_dataset_and_by_the_builder(sample_release, tmp_path, config):
    loaded = datasets.load_dataset(str(sample_release), config)
    builder = rms.RMS(config_name=config, release=str(sample_release), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    built = builder.as_dataset()
    assert sorted(built) == sorted(loaded) == ["test", "train"]
    for split in loaded:
        assert sorted(built[split]["id"]) == sorted(loaded[split]["id"]) and len(loaded[split]) > 0
        assert built[split].features == loaded[split].features == rms.FEATURES[config]


def test_the_sample_card_is_a_hub_card_with_dataset_info_for_every_config(sample_release):
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(sample_release / "README.md")
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    assert sorted(infos) == sorted(rms.CONFIG_NAMES)
    for config, info in infos.items():
        assert info.features == rms.FEATURES[config]
        assert {name: split.num_examples for name, split in info.splits.items()} == {
            split: len(ds) for split, ds in datasets.load_dataset(str(sample_release), config).items()}
    assert card.data.license_link == "LICENSE.md" and "not-for-all-audiences" in card.data.tags
    assert "## Personal and sensitive information" in card.text and "https://arxiv.org/abs/2509.04403" in card.text
