"""Manifests as people really write them: Excel's UTF-8 byte-order mark is read, a Latin-1 file is one
clear line naming the file and line, and a path that leaves the input folder is refused."""

from __future__ import annotations

import json
import shutil

import pytest

from generation.engine.records import Reject
from generation.steps.ingest import Ingestor, read_inputs, read_manifest
from tests.generation_pipeline.conftest import shared_photos

from .test_bad_values import assert_refused, set_key

HEADER = "file,source,license,description\r\n"


def folder_with(tmp_path, manifest: bytes, count: int = 2):
    folder = tmp_path / "photos"
    folder.mkdir(exist_ok=True)
    for photo in shared_photos(count):
        shutil.copy(photo, folder / photo.name)
    (folder / "MANIFEST.csv").write_bytes(manifest)
    return folder


def rows_for(names: list[str]) -> str:
    return "".join(f"{name},test/{name},CC0,a kitchen\r\n" for name in names)


def test_a_utf8_bom_manifest_is_read_like_any_other(tmp_path):
    names = [p.name for p in shared_photos(2)]
    folder = folder_with(tmp_path, ("\ufeff" + HEADER + rows_for(names)).encode("utf-8"))
    raws = list(read_inputs({"kind": "folder", "path": str(folder)}))
    assert [raw.name for raw in raws] == names  # each photo once, none "unlisted"
    assert all(raw.source == f"test/{raw.name}" and raw.license == "CC0" and not raw.error for raw in raws)
    ingestor = Ingestor()
    assert not any(isinstance(ingestor.add(raw), Reject) for raw in raws)  # no "missing provenance" reject


def test_a_bom_jsonl_manifest_is_read(tmp_path):
    photo = shared_photos(1)[0]
    shutil.copy(photo, tmp_path / photo.name)
    manifest = tmp_path / "rows.jsonl"
    manifest.write_bytes(("\ufeff" + json.dumps({"file": photo.name, "source": "s", "license": "CC0"}) + "\n").encode())
    [raw] = read_inputs({"kind": "manifest", "path": str(manifest)})
    assert (raw.name, raw.source, raw.error) == (photo.name, "s", "")


def test_a_latin1_manifest_names_the_file_and_line(tmp_path):
    names = [p.name for p in shared_photos(2)]
    text = HEADER + rows_for(names[:1]) + f"{names[1]},test/x,CC0,un caf\xe9 en terrasse\r\n"
    folder = folder_with(tmp_path, text.encode("latin-1"))
    with pytest.raises(ValueError) as caught:
        read_manifest(folder / "MANIFEST.csv")
    assert str(caught.value).startswith(f"{folder / 'MANIFEST.csv'}:3: not UTF-8 text (byte 0xe9 at column ")
    assert "save the manifest as UTF-8" in str(caught.value)


def test_the_cli_refuses_a_latin1_manifest_before_loading_a_model(run_cli, photo_dir):
    (photo_dir / "MANIFEST.csv").write_bytes((HEADER + "a.jpg,test/a,CC0,caf\xe9\r\n").encode("latin-1"))
    assert_refused(run_cli(), f"input: {photo_dir / 'MANIFEST.csv'}:2: not UTF-8 text (byte 0xe9")


def test_a_manifest_without_a_file_column_says_which_columns_it_has(run_cli, photo_dir):
    (photo_dir / "MANIFEST.csv").write_text("name,source,license\r\na.jpg,s,CC0\r\n")
    assert_refused(run_cli(), "MANIFEST.csv:1: no 'file' column (columns: name, source, license)")


@pytest.mark.parametrize("escape", ["../secret.jpg", "sub/../../secret.jpg", "ABSOLUTE"])
def test_a_path_outside_the_input_folder_is_refused(tmp_path, escape):
    outside = shared_photos(1)[0]
    (tmp_path / "secret.jpg").write_bytes(outside.read_bytes())
    name = str(tmp_path / "secret.jpg") if escape == "ABSOLUTE" else escape
    folder = folder_with(tmp_path, (HEADER + rows_for([name])).encode(), count=0)
    [raw] = read_inputs({"kind": "folder", "path": str(folder)})
    assert raw.data is None and "is outside the input folder" in raw.error and "line 2" in raw.error
    reject = Ingestor().add(raw)
    assert "outside the input folder" in reject.reason


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(shared_photos(1)[0].read_bytes())
    folder = folder_with(tmp_path, (HEADER + rows_for(["link.jpg"])).encode(), count=0)
    (folder / "link.jpg").symlink_to(outside)
    raws = list(read_inputs({"kind": "folder", "path": str(folder)}))
    assert raws[0].data is None and "outside the input folder" in raws[0].error


def test_a_file_in_a_subfolder_is_fine_and_listed_once(tmp_path):
    photo = shared_photos(1)[0]
    folder = folder_with(tmp_path, (HEADER + rows_for([f"./{photo.name}"])).encode(), count=1)
    raws = list(read_inputs({"kind": "folder", "path": str(folder)}))
    assert len(raws) == 1 and raws[0].data == photo.read_bytes() and raws[0].source


def test_a_manifest_input_cannot_reach_outside_its_folder(tmp_path):
    (tmp_path / "x.jpg").write_bytes(shared_photos(1)[0].read_bytes())
    (tmp_path / "list").mkdir()
    manifest = tmp_path / "list" / "rows.csv"
    manifest.write_text(HEADER + rows_for(["../x.jpg"]))
    [raw] = read_inputs({"kind": "manifest", "path": str(manifest)})
    assert raw.data is None and "outside the input folder" in raw.error


def test_a_misspelt_manifest_name_is_refused(run_cli, photo_dir):
    assert_refused(run_cli(set_key("input.manifest", "MANIFEST.cvs")), "input.manifest: ", "MANIFEST.cvs not found")


def test_a_manifest_without_a_license_column_is_refused_like_one_without_a_file_column(run_cli, photo_dir):
    """Otherwise the run goes on and rejects every image for missing provenance, exiting 0."""
    (photo_dir / "MANIFEST.csv").write_text("file,source\r\na.jpg,s\r\n")
    assert_refused(run_cli(), "MANIFEST.csv:1: no 'license' column (columns: file, source)")
