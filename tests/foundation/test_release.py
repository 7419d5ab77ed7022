"""A release loads with plain `load_dataset` (parquet + README configs) and with the builder class."""

import io
import os

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

import rms_dataset as rms
from generation.release.write import ROW_GROUP_ROWS, is_declared, plan_shards, write_release


@pytest.mark.parametrize("config", rms.CONFIG_NAMES)
def test_load_dataset_returns_every_field_with_pil_images(small_release, config):
    loaded = datasets.load_dataset(str(small_release), config)
    for split in loaded:
        assert list(loaded[split].features) == list(rms.FEATURES[config])
        row = loaded[split][0]
        assert isinstance(row["image"], Image.Image)
        assert all(row[name] not in (None, "") for name in rms.FEATURES[config])


def test_responses_carry_their_label_as_a_class_label_and_point_at_pairs(small_release):
    pair_ids = {row["id"] for split in datasets.load_dataset(str(small_release), "pairs").values() for row in split}
    for config, label in rms.RESPONSE_CONFIGS.items():
        for split in datasets.load_dataset(str(small_release), config).values():
            assert split.features["label"] == datasets.ClassLabel(names=["safe", "unsafe"])
            assert {split.features["label"].int2str(value) for value in split["label"]} == {label}
            assert set(split["pair_id"]) <= pair_ids


@pytest.mark.parametrize("config", rms.CONFIG_NAMES)
def test_builder_yields_the_same_rows_as_load_dataset(small_release, tmp_path, config):
    builder = rms.RMS(config_name=config, release=str(small_release), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    built = builder.as_dataset()
    loaded = datasets.load_dataset(str(small_release), config)
    assert set(built) == set(loaded)
    for split in loaded:
        key = lambda row: row["id"]  # noqa: E731
        built_rows = sorted(built[split].cast_column("image", datasets.Image(decode=False)), key=key)
        loaded_rows = sorted(loaded[split].cast_column("image", datasets.Image(decode=False)), key=key)
        assert [r["id"] for r in built_rows] == [r["id"] for r in loaded_rows]
        for ours, theirs in zip(built_rows, loaded_rows):
            assert ours["image"]["bytes"] == theirs["image"]["bytes"]
            assert {k: v for k, v in ours.items() if k != "image"} == {k: v for k, v in theirs.items() if k != "image"}


def test_images_round_trip_byte_for_byte(small_release, shared_dir):
    pairs = datasets.load_dataset(str(small_release), "pairs", split="train").cast_column(
        "image", datasets.Image(decode=False)
    )
    row = pairs[0]
    original = (shared_dir / "images" / row["image"]["path"]).read_bytes()
    assert row["image"]["bytes"] == original
    assert row["image_id"] == rms.image_id_for(original)
    Image.open(io.BytesIO(row["image"]["bytes"])).load()


def test_write_release_refuses_to_overwrite_and_keeps_the_old_release(small_release, tmp_path):
    rows = {
        config: {split: list(ds) for split, ds in datasets.load_dataset(str(small_release), config).cast_column(
            "image", datasets.Image(decode=False)).items()}
        for config in rms.SOURCE_CONFIGS
    }
    target = write_release(tmp_path / "r", rows)
    before = {p.name: p.stat().st_mtime_ns for p in target.rglob("*.parquet")}
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        write_release(target, rows)
    assert {p.name: p.stat().st_mtime_ns for p in target.rglob("*.parquet")} == before
    write_release(target, rows, overwrite=True)
    assert not list(tmp_path.glob(".r.*")), "staging and retired directories are cleaned up"


def test_write_release_names_the_row_with_a_bad_field(tmp_path):
    bad = {"pairs": {"train": [{"id": "x", "text": "hi"}]}, "safe_responses": {"train": [{}]}, "unsafe_responses": {"train": [{}]}}
    with pytest.raises(ValueError, match=r"pairs/train row 0 \(id='x'\): missing fields \[.*'image'"):
        write_release(tmp_path / "r", bad)
    assert not (tmp_path / "r").exists()


def test_write_release_refuses_an_empty_config(tmp_path):
    with pytest.raises(ValueError, match="config 'pairs' has no rows"):
        write_release(tmp_path / "r", {c: {"train": []} for c in rms.SOURCE_CONFIGS})


def test_write_release_refuses_an_extra_file_outside_the_layout(small_release, tmp_path):
    rows = {config: {split: list(ds) for split, ds in datasets.load_dataset(str(small_release), config).cast_column(
        "image", datasets.Image(decode=False)).items()} for config in rms.SOURCE_CONFIGS}
    with pytest.raises(ValueError, match=r"extra file\(s\) \['notes.txt'\] are not part of the release layout"):
        write_release(tmp_path / "r", rows, extra_files={"notes.txt": b"x"})
    assert not (tmp_path / "r").exists()
    assert is_declared("taxonomy.png") and is_declared("pairs/train-00000-of-00001.parquet")
    assert not is_declared(".env") and not is_declared("pairs/notes.parquet") and not is_declared("other/train-00000-of-00001.parquet")


def test_a_release_with_the_default_name_validates_and_its_card_yaml_keeps_the_name(small_release, tmp_path):
    """The default pretty name holds a colon ("RMS: Real-world ..."): the card must quote it in its YAML."""
    import yaml

    from generation.release.card import ReleaseInfo
    from generation.release.validate import validate_release

    rows = {config: {split: list(ds) for split, ds in datasets.load_dataset(str(small_release), config).cast_column(
        "image", datasets.Image(decode=False)).items()} for config in rms.SOURCE_CONFIGS}
    target = write_release(tmp_path / "r", rows)
    front_matter = (target / "README.md").read_text(encoding="utf-8").split("---")[1]
    assert yaml.safe_load(front_matter)["pretty_name"] == ReleaseInfo.__dataclass_fields__["pretty_name"].default
    assert validate_release(str(target)) == []


def test_shards_are_cut_by_size_and_balanced():
    assert [len(r) for r in plan_shards([10] * 10, target_bytes=1000)] == [10]
    shards = plan_shards([10] * 10, target_bytes=30)  # 100 bytes at most ~30 each: 4 shards of 2-3 rows
    assert [len(r) for r in shards] == [2, 3, 2, 3] and [r.start for r in shards] == [0, 2, 5, 7]
    assert [len(r) for r in plan_shards([50, 1, 1, 1, 50, 1], target_bytes=60)] == [3, 3]  # 52 bytes each


def test_photos_given_by_path_are_read_when_written_into_size_balanced_shards(small_release, tmp_path):
    """The streaming interface of the release writer: rows whose photo is a path; shards of about
    `shard_bytes`, row groups of ROW_GROUP_ROWS rows."""
    photos = tmp_path / "photos"
    photos.mkdir()
    rows = {}
    for config in rms.SOURCE_CONFIGS:
        rows[config] = {}
        for split, dataset in datasets.load_dataset(str(small_release), config).cast_column(
                "image", datasets.Image(decode=False)).items():
            rows[config][split] = []
            for row in dataset:
                path = photos / f"{row['image_id']}.jpg"
                path.write_bytes(row["image"]["bytes"])
                rows[config][split].append({**row, "image": {"path": str(path), "bytes": None}})
    photo_bytes = sum(path.stat().st_size for path in photos.iterdir())
    target = write_release(tmp_path / "r", {c: {s: iter(r) for s, r in by_split.items()} for c, by_split in rows.items()},
                           shard_bytes=photo_bytes // 2)
    shards = rms.find_shards(str(target), rms.PAIRS)["train"]
    assert len(shards) > 1
    sizes = [os.path.getsize(path) for path in shards]
    largest_photo = max(path.stat().st_size for path in photos.iterdir())
    assert max(sizes) - min(sizes) < 1.1 * largest_photo  # balanced to within a row, not full shards and a remainder
    assert all(pq.ParquetFile(path).metadata.row_group(0).num_rows <= ROW_GROUP_ROWS for path in shards)
    loaded = datasets.load_dataset(str(target), rms.PAIRS, split="train").cast_column("image", datasets.Image(decode=False))
    assert all(row["image"]["bytes"] == (photos / row["image"]["path"]).read_bytes() for row in loaded)


def test_a_photo_changed_on_disk_since_ingest_is_refused_naming_it(small_release, tmp_path):
    rows = {config: {split: list(ds) for split, ds in datasets.load_dataset(str(small_release), config).cast_column(
        "image", datasets.Image(decode=False)).items()} for config in rms.SOURCE_CONFIGS}
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(rows[rms.PAIRS]["train"][0]["image"]["bytes"] + b"\0")
    rows[rms.PAIRS]["train"][0] = {**rows[rms.PAIRS]["train"][0], "image": {"path": str(photo), "bytes": None}}
    with pytest.raises(ValueError, match=rf"\({photo}\) hash to .* not its image_id"):
        write_release(tmp_path / "r", rows)
    assert not (tmp_path / "r").exists()


def test_the_writer_refuses_rows_for_the_derived_preference_config(small_release, tmp_path):
    with pytest.raises(ValueError, match="`preference` is derived"):
        write_release(tmp_path / "r", {rms.PREFERENCE: {"train": []}})


def test_the_release_commands_log_their_notes_and_quiet_keeps_only_problems(tmp_path, shared_dir, repo_root):
    import subprocess
    import sys

    from tests.foundation.conftest import write_curated_sample

    sample = write_curated_sample(tmp_path / "sample", shared_dir)
    env = {**os.environ, "PYTHONPATH": str(repo_root)}

    def build(*flags):
        out = tmp_path / f"release{len(flags)}"
        return subprocess.run([sys.executable, "-m", "generation", "build-sample", "--out", str(out), "--sample-dir",
                               str(sample), *flags], capture_output=True, text=True, env=env, cwd=repo_root)

    normal, quiet = build(), build("--quiet")
    assert normal.returncode == quiet.returncode == 0
    assert "INFO: wrote" in normal.stderr  # write_release's note, through logging
    assert quiet.stderr == "" and "it validates" in quiet.stdout
