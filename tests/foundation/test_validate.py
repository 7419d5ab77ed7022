"""`validate` passes on good releases and names file, row and field for each kind of breakage."""

import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import rms_dataset as rms
from generation.release.validate import validate_release
from tests.foundation.tampering import tamper_image, tamper_text


def fingerprint(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def shard(root, config, split="train"):
    return rms.find_shards(str(root), config)[split][0]


def rewrite_rows(path, change):
    table = pq.read_table(path)
    rows = table.to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


def run_validate(root):
    return subprocess.run([sys.executable, "-m", "generation", "validate", str(root)], capture_output=True, text=True)


def test_a_fresh_release_is_valid(small_release):
    assert validate_release(str(small_release)) == []
    result = run_validate(small_release)
    assert result.returncode == 0, result.stderr
    assert "valid RMS release" in result.stdout


def break_missing_config(root):
    shutil.rmtree(root / "unsafe_responses")
    card = (root / "README.md").read_text()
    start = card.index("- config_name: unsafe_responses")
    (root / "README.md").write_text(card[:start] + card[card.index("---", start):])
    return "README.md", "config 'unsafe_responses' is not declared"


def break_truncated_shard(root):
    path = shard(root, "pairs")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    return path, "truncated or corrupt"


def break_schema(root):
    path = shard(root, "safe_responses")
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["risk_category"]).append_column("severity", pa.array([1] * table.num_rows)), path)
    return path, "missing column"


def break_card_names_missing_shard(root):
    card = root / "README.md"
    card.write_text(card.read_text().replace("pairs/train-00000-of-00001.parquet", "pairs/train-00000-of-00002.parquet"))
    return "README.md", "which does not exist"


def break_duplicate_id(root):
    path = shard(root, "pairs")
    rewrite_rows(path, lambda rows: rows.__setitem__(1, {**rows[1], "id": rows[0]["id"]}))
    return path, "duplicate id"


def break_dangling_response(root):
    path = shard(root, "unsafe_responses")
    rewrite_rows(path, lambda rows: rows.__setitem__(0, {**rows[0], "pair_id": "0000000000000000"}))
    return path, "which is not in `pairs`"


def break_image(root):
    path = shard(root, "pairs")
    rewrite_rows(path, lambda rows: rows.__setitem__(0, {**rows[0], "image": {"bytes": b"\xff\xd8 not a jpeg", "path": "x.jpg"}}))
    return path, "image does not decode"


def break_license(root):
    path = shard(root, "pairs")
    rewrite_rows(path, lambda rows: rows.__setitem__(0, {**rows[0], "image_license": " "}))
    return path, "licence"


def break_hand_edited_card(root):
    card = root / "README.md"
    card.write_text(card.read_text().replace("## Summary", "## Summary\n\nNow with 10,000 pairs!"))
    return "README.md", "does not match the shards"


BREAKAGES = [
    break_missing_config, break_truncated_shard, break_schema, break_card_names_missing_shard,
    break_duplicate_id, break_dangling_response, break_image, break_license, break_hand_edited_card,
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__.removeprefix("break_"))
def test_each_breakage_is_reported_with_its_file_and_nothing_is_changed(release_copy, breakage):
    where, what = breakage(release_copy)
    before = fingerprint(release_copy)
    problems = validate_release(str(release_copy))
    assert problems, "the broken release must not validate"
    messages = [str(problem) for problem in problems]
    assert any(str(where) in message and what in message for message in messages), messages
    result = run_validate(release_copy)
    assert result.returncode == 1
    assert what in result.stderr and "NOT valid" in result.stderr
    assert fingerprint(release_copy) == before, "validation never modifies a release"


def test_row_level_problems_name_the_row_and_field(release_copy):
    break_license(release_copy)
    row_problems = [p for p in validate_release(str(release_copy)) if p.row is not None]
    assert [(p.row, p.field) for p in row_problems] == [(0, "image_license")]


@pytest.mark.parametrize(
    "breakage", [break_missing_config, break_truncated_shard, break_schema, break_card_names_missing_shard],
    ids=lambda f: f.__name__.removeprefix("break_"),
)
def test_load_fails_clearly_on_a_broken_layout(release_copy, breakage):
    where, what = breakage(release_copy)
    with pytest.raises(rms.ReleaseError, match=what) as error:
        rms.load(str(release_copy), "pairs")
    assert str(where) in str(error.value)
    with pytest.raises(rms.ReleaseError, match=what):
        builder = rms.RMS(config_name="pairs", release=str(release_copy), cache_dir=str(release_copy.parent / "cache"))
        builder.download_and_prepare()


def test_load_of_a_good_release_returns_images(small_release):
    pairs = rms.load(str(small_release), "pairs", split="train")
    assert isinstance(pairs[0]["image"], Image.Image)
    with pytest.raises(ValueError, match="unknown config 'pair'"):
        rms.load(str(small_release), "pair")


def test_image_bytes_are_really_jpeg(small_release):
    table = pq.read_table(shard(small_release, "pairs"), columns=["image"])
    assert Image.open(io.BytesIO(table.to_pylist()[0]["image"]["bytes"])).format == "JPEG"


def test_a_changed_shard_byte_and_a_changed_image_byte_are_named_by_file_and_row(release_copy):
    """Integrity: checksums.sha256 names each changed file, the content-derived ids name each changed row."""
    pairs_shard = Path(shard(release_copy, "pairs"))
    responses_shard = Path(shard(release_copy, "safe_responses"))
    tamper_text(pairs_shard, row=0)
    tamper_image(responses_shard, row=2)

    problems = validate_release(str(release_copy))
    changed_files = {p.file for p in problems if "sha256 differs" in p.message}
    assert changed_files == {str(pairs_shard), str(responses_shard)}
    assert (str(pairs_shard), 0, "id") in {(p.file, p.row, p.field) for p in problems if "was changed" in p.message}
    assert (str(responses_shard), 2, "image") in {(p.file, p.row, p.field) for p in problems if "photo was changed" in p.message}
    result = run_validate(release_copy)
    assert result.returncode == 1
    assert f"{pairs_shard}, row 0, field 'id'" in result.stderr and f"{responses_shard}, row 2, field 'image'" in result.stderr


def test_load_with_verify_refuses_a_changed_file_and_names_it(release_copy):
    assert len(rms.load(str(release_copy), "pairs", split="train", verify=True)) > 0
    pairs_shard = Path(shard(release_copy, "pairs"))
    tamper_text(pairs_shard, row=0)
    with pytest.raises(rms.ReleaseError, match="sha256 differs") as error:
        rms.load(str(release_copy), "pairs", verify=True)
    assert str(pairs_shard) in str(error.value)


def test_a_file_added_or_removed_after_writing_is_named(release_copy):
    (release_copy / "notes.txt").write_text("added by hand")
    (release_copy / "LICENSE.md").unlink()
    messages = [str(p) for p in rms.verify_checksums(str(release_copy))]
    assert any("notes.txt" in m and "not recorded" in m for m in messages), messages
    assert any("LICENSE.md" in m and "missing, though" in m for m in messages), messages
