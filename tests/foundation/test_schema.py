"""The schema is defined once, documented field by field, and ids depend only on content."""

import datasets

import rms_dataset as rms


def test_the_four_configs_have_features_and_every_field_is_documented():
    assert set(rms.FEATURES) == {"pairs", "safe_responses", "unsafe_responses", "preference"}
    for config, features in rms.FEATURES.items():
        assert set(rms.FIELD_DOCS[config]) == set(features), config
        assert isinstance(features["image"], datasets.Image)


def test_the_rendered_card_documents_every_field_of_every_config(sample_release):
    card = (sample_release / "README.md").read_text()
    for config, features in rms.FEATURES.items():
        section = card[card.index(f"### `{config}`"):]
        for name in features:
            assert f"| `{name}` |" in section and rms.FIELD_DOCS[config][name] in section, (config, name)


def test_ids_are_content_derived_and_ignore_whitespace():
    image_id = rms.image_id_for(b"photo bytes")
    assert image_id == rms.image_id_for(b"photo bytes") != rms.image_id_for(b"other bytes")
    assert rms.pair_id_for(image_id, "I want to  jump\n") == rms.pair_id_for(image_id, "I want to jump")
    assert rms.pair_id_for(image_id, "I want to jump") != rms.pair_id_for(image_id, "I want to swim")
    assert len(image_id) == 16


def test_split_by_image_is_deterministic_and_roughly_proportional():
    ids = [rms.image_id_for(str(i).encode()) for i in range(2000)]
    splits = [rms.split_for_image(i) for i in ids]
    assert splits == [rms.split_for_image(i) for i in ids]
    assert 0.2 < splits.count("test") / len(splits) < 0.3
