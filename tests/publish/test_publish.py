"""`python -m generation publish`: a release goes to a (local) Hub as one tagged commit and loads back unchanged.

Every test talks to the Hub look-alike in tests/hub/server.py on 127.0.0.1 with the real huggingface_hub
client; loading goes through `datasets.load_dataset` and the `rms_dataset.RMS` builder in a subprocess
(both read HF_ENDPOINT at import time).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError
from PIL import Image

import rms_dataset
from generation.__main__ import main as cli
from generation.release.publish import PublishError, Version, release_files
from rms_dataset import CONFIG_NAMES, PAIRS, PREFERENCE, SOURCE_CONFIGS, find_shards
from tests.publish.conftest import FAKE_TOKEN, REPO, REPO_ROOT

pytestmark = pytest.mark.slow

WRITES = ("POST", "PUT", "DELETE")


def publish(hub, release: Path, version: str, *extra: str, repo: str = REPO) -> int:
    """The CLI, gated with automatic approval unless `extra` chooses the access itself."""
    access = () if {"--gated", "--public"} & set(extra) else ("--gated", "auto")
    return cli(["publish", str(release), "--repo", repo, "--version", version, "--endpoint", hub.url, *access, *extra])


def writes(hub) -> list[str]:
    return [request for request in hub.requests if request.split()[0] in WRITES]


def image_digest(data: bytes) -> dict:
    with Image.open(io.BytesIO(data)) as image:
        return {"bytes_sha256": hashlib.sha256(data).hexdigest(),
                "pixels_sha256": hashlib.sha256(image.convert("RGB").tobytes()).hexdigest(), "size": image.size}


def expected(rows: dict) -> dict:
    """The built rows as the loader script prints them: every field as stored (labels and verdicts as their
    ClassLabel index), images replaced by digests."""
    return {config: {split: [{**{k: v for k, v in rms_dataset.FEATURES[config].encode_example(row).items() if k != "image"},
                              "image": image_digest(row["image"]["bytes"])} for row in split_rows]
                     for split, split_rows in rows[config].items()} for config in SOURCE_CONFIGS}


def rows_on_disk(release: Path) -> dict:
    """rows[config][split] of the source configs, read straight from a release directory's shards."""
    rows = {}
    for config in SOURCE_CONFIGS:
        rows[config] = {split: [row for path in paths for row in pq.read_table(path).to_pylist()]
                        for split, paths in find_shards(str(release), config).items()}
    return rows


LOADER = textwrap.dedent("""
    import hashlib, io, json, sys
    import datasets
    from huggingface_hub import DatasetCard
    from PIL import Image
    import rms_dataset

    repo, revision, cache = sys.argv[1], sys.argv[2], sys.argv[3]

    def digest(image):
        assert image.__class__.__module__.startswith("PIL."), type(image)
        return {"pixels_sha256": hashlib.sha256(image.convert("RGB").tobytes()).hexdigest(), "size": list(image.size)}

    out = {"load_dataset": {}, "builder": {}}
    for config in rms_dataset.CONFIG_NAMES:
        out["load_dataset"][config] = {}
        for split_name, split in datasets.load_dataset(repo, config, revision=revision).items():
            raw = split.cast_column("image", datasets.Image(decode=False))
            rows = []
            for decoded, undecoded in zip(split, raw):
                row = {k: v for k, v in decoded.items() if k != "image"}
                row["image"] = digest(decoded["image"])
                row["image"]["bytes_sha256"] = hashlib.sha256(undecoded["image"]["bytes"]).hexdigest()
                rows.append(row)
            out["load_dataset"][config][split_name] = rows
    builder = rms_dataset.RMS(config_name=rms_dataset.PAIRS, release=repo, revision=revision, cache_dir=cache)
    builder.download_and_prepare()
    for split_name, pairs in builder.as_dataset().items():
        out["builder"][split_name] = [{"id": r["id"], "text": r["text"], "image": digest(r["image"])} for r in pairs]
    # The card as the Hub's clients read it: huggingface_hub's DatasetCard and datasets' builder info.
    card = DatasetCard.load(repo, repo_type="dataset")
    out["card"] = {key: card.data.get(key) for key in ("license_link", "annotations_creators", "tags", "extra_gated_prompt")}
    out["info"] = {}
    for config in rms_dataset.CONFIG_NAMES:
        info = datasets.load_dataset_builder(repo, config, revision=revision).info
        out["info"][config] = {"features": repr(info.features),
                               "splits": {name: split.num_examples for name, split in (info.splits or {}).items()}}
    print("RESULT" + json.dumps(out))
""")


def load_from_hub(hub, hf_env: dict, revision: str, tmp_path: Path, repo: str = REPO) -> dict:
    env = {**os.environ, **hf_env, "HF_ENDPOINT": hub.url, "PYTHONPATH": str(REPO_ROOT)}
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN"):
        env.pop(key, None)
    result = subprocess.run([sys.executable, "-c", LOADER, repo, revision, str(tmp_path / f"builder-{revision}")],
                            env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT"))


def normalise(rows: list[dict]) -> list[dict]:
    """JSON round trip (tuples become lists), ordered by id (the writer orders shards its own way)."""
    return sorted(json.loads(json.dumps(rows)), key=lambda row: row["id"])


def assert_loads_as(loaded: dict, rows: dict) -> None:
    want = expected(rows)
    for config in SOURCE_CONFIGS:
        assert sorted(loaded["load_dataset"][config]) == sorted(want[config]), config
        for split in want[config]:
            assert normalise(loaded["load_dataset"][config][split]) == normalise(want[config][split]), (config, split)
    for split, pairs in want[PAIRS].items():  # one preference row per pair: its query, guidance and unsafe response
        preference = {row["pair_id"]: row for row in loaded["load_dataset"][PREFERENCE][split]}
        assert sorted(preference) == sorted(pair["id"] for pair in pairs)
        for pair in pairs:
            assert preference[pair["id"]]["prompt"] == [{"role": "user", "content": pair["text"]}]
            assert preference[pair["id"]]["image"] == json.loads(json.dumps(pair["image"]))
    card = loaded["card"]
    assert card["license_link"] == "LICENSE.md" and "not-for-all-audiences" in card["tags"]
    assert card["annotations_creators"] == ["machine-generated", "expert-generated"] and card["extra_gated_prompt"]
    for config in CONFIG_NAMES:  # the card's dataset_info, as load_dataset_builder reports it
        sizes = {split: len(split_rows) for split, split_rows in loaded["load_dataset"][config].items()}
        assert loaded["info"][config] == {"features": repr(rms_dataset.FEATURES[config]), "splits": sizes}, config
    assert sorted(loaded["builder"]) == sorted(want[PAIRS])
    for split, pairs in want[PAIRS].items():
        assert normalise(loaded["builder"][split]) == normalise(
            [{"id": r["id"], "text": r["text"], "image": {k: v for k, v in r["image"].items() if k != "bytes_sha256"}}
             for r in pairs])


# ----------------------------------------------------------------------------------------------------------


def test_version_is_strict_semver():
    assert str(Version.parse("1.10.0")) == "1.10.0" and Version.parse("1.10.0").tag == "v1.10.0"
    assert Version.parse("1.9.9") < Version.parse("1.10.0")
    for bad in ("1.0", "01.0.0", "1.0.0-rc1", "latest", ""):
        with pytest.raises(PublishError, match="not semantic versioning"):
            Version.parse(bad)
    with pytest.raises(PublishError, match="without the leading 'v'"):
        Version.parse("v1.0.0")


def test_published_release_loads_back_exactly_and_old_versions_stay(hub, hf_env, release_v1, release_v2, tmp_path,
                                                                    monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    (v1, rows_v1), (v2, rows_v2) = release_v1, release_v2

    assert publish(hub, v1, "1.0.0") == 0
    out = capsys.readouterr().out
    assert f"{hub.url}/datasets/{REPO}/commit/" in out
    assert f'load_dataset("{REPO}", "pairs", revision="v1.0.0")' in out

    # The tagged commit is the release, file for file, plus the Hub's .gitattributes.
    files_v1 = {path: f.local_path.read_bytes() for path, f in release_files(v1).items()}
    assert {p: b for p, b in hub.snapshot(REPO, "v1.0.0").items() if p != ".gitattributes"} == files_v1
    assert "taxonomy.json" in files_v1

    assert publish(hub, v2, "1.1.0") == 0
    files_v2 = {path: f.local_path.read_bytes() for path, f in release_files(v2).items()}
    assert "taxonomy.json" not in files_v2
    assert {p: b for p, b in hub.snapshot(REPO, "main").items() if p != ".gitattributes"} == files_v2
    refs = hub.refs(REPO)
    assert refs["tags"]["v1.1.0"] == refs["branches"]["main"] != refs["tags"]["v1.0.0"]
    # v1.0.0 is untouched by the second publish: same snapshot as before.
    assert {p: b for p, b in hub.snapshot(REPO, "v1.0.0").items() if p != ".gitattributes"} == files_v1

    assert_loads_as(load_from_hub(hub, hf_env, "v1.0.0", tmp_path), rows_v1)
    assert_loads_as(load_from_hub(hub, hf_env, "v1.1.0", tmp_path), rows_v2)


def test_refusals_change_nothing_remotely(hub, hf_env, release_v1, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    v1, _ = release_v1
    assert publish(hub, v1, "1.0.0") == 0
    before, n_writes = hub.refs(REPO), len(writes(hub))
    capsys.readouterr()

    assert publish(hub, v1, "1.0.0") == 1
    assert "tag v1.0.0 already exists" in capsys.readouterr().err
    assert publish(hub, v1, "0.9.0") == 1
    assert "not greater than the latest existing tag v1.0.0" in capsys.readouterr().err
    assert publish(hub, v1, "1.0") == 1
    assert "not semantic versioning" in capsys.readouterr().err
    # A newer version whose release.json (and so its card) still says 1.0.0 is refused too.
    assert publish(hub, v1, "1.0.1") == 1
    err = capsys.readouterr().err
    assert "release.json" in err and "version is '1.0.0', publishing as '1.0.1'" in err

    assert hub.refs(REPO) == before
    assert len(writes(hub)) == n_writes


def test_a_failed_tag_is_completed_by_running_the_same_command_again(hub, hf_env, release_v1, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub.fail_next("tag")
    assert publish(hub, release_v1[0], "1.0.0") == 1
    err = capsys.readouterr().err
    assert "was committed" in err and "tagging it v1.0.0 failed" in err and "Run the same command again" in err
    head = hub.refs(REPO)["branches"]["main"]
    assert hub.refs(REPO)["tags"] == {}
    n_writes = len(writes(hub))

    assert publish(hub, release_v1[0], "1.0.0") == 0
    assert f"{len(release_files(release_v1[0]))} unchanged" in capsys.readouterr().out
    assert hub.refs(REPO) == {"branches": {"main": head}, "tags": {"v1.0.0": head}}  # no second commit
    # Nothing was uploaded or committed again: the LFS batch answered "already stored", then only the tag.
    again = writes(hub)[n_writes:]
    assert not [w for w in again if w.startswith("PUT /lfs-upload/") or "/commit/" in w], again
    assert again[-1] == f"POST /api/datasets/{REPO}/tag/{head}"


def test_a_commit_landing_between_plan_and_push_is_refused(hub, hf_env, release_v1, release_v2, monkeypatch):
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    from generation.release.publish import execute, hub_api, plan_publish

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    assert publish(hub, release_v1[0], "1.0.0") == 0
    api = hub_api(hub.url)
    plan = plan_publish(api, release_v2[0], REPO, Version.parse("1.1.0"), gated="auto")
    api.create_commit(REPO, [CommitOperationAdd("NOTES.md", b"someone else's change")], commit_message="other",
                      repo_type="dataset")
    moved = hub.refs(REPO)
    with pytest.raises(HfHubHTTPError) as error:
        execute(api, plan, release_v2[0])
    assert error.value.response.status_code == 409
    assert hub.refs(REPO) == moved  # neither the commit nor the tag happened


def test_dry_run_prints_the_plan_and_touches_nothing(hub, hf_env, release_v1, release_v2, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    (v1, _), (v2, _) = release_v1, release_v2

    assert publish(hub, v1, "1.0.0", "--dry-run", "--private", "--gated", "auto") == 0
    plan = capsys.readouterr().out
    assert "Dry run" in plan and "will be CREATED, private" in plan and "gated False -> 'auto'" in plan
    assert "tag:     v1.0.0 (latest existing version tag: none)" in plan
    for path, local in release_files(v1).items():
        assert any(line.startswith("  + ") and line.endswith(path) for line in plan.splitlines()), path
    assert writes(hub) == []
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token=FAKE_TOKEN).dataset_info(REPO)

    assert publish(hub, v1, "1.0.0") == 0
    before, n_writes = hub.refs(REPO), len(writes(hub))
    capsys.readouterr()
    assert publish(hub, v2, "1.1.0", "--dry-run") == 0
    plan = capsys.readouterr().out
    assert "(exists, main at" in plan and "latest existing version tag: v1.0.0" in plan
    lines = plan.splitlines()
    assert any(line.startswith("  - ") and line.endswith("taxonomy.json") for line in lines)
    assert any(line.startswith("  + ") and line.endswith("pairs/train-00000-of-00001.parquet") for line in lines)
    assert hub.refs(REPO) == before and len(writes(hub)) == n_writes


def test_invalid_release_is_refused_before_any_request(hub, hf_env, release_v1, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    broken = Path(shutil.copytree(release_v1[0], tmp_path / "broken"))
    (broken / "safe_responses" / "train-00000-of-00001.parquet").write_bytes(b"not parquet at all")

    assert publish(hub, broken, "1.0.0") == 1
    err = capsys.readouterr().err
    assert "is not a valid release" in err and "safe_responses/train-00000-of-00001.parquet" in err
    assert hub.requests == []


def test_token_never_leaks(hub, hf_env, release_v1, release_v2, tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)
    for name in ("huggingface_hub", "httpx", "httpx2", "datasets"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    (v1, _), (v2, _) = release_v1, release_v2

    assert publish(hub, v1, "1.0.0", "--gated", "manual") == 0
    assert publish(hub, v1, "1.0.0") == 1  # an error path too
    assert publish(hub, v2, "1.1.0", "--dry-run") == 0
    assert publish(hub, v2, "1.1.0", "--endpoint", "http://127.0.0.1:9") == 1  # unreachable server

    # The Python API raises; the formatted exception chains must not carry the token either.
    from generation.release.publish import publish as publish_api

    from generation.release.write import rerender_card

    foreign = Path(shutil.copytree(v2, tmp_path / "foreign"))  # a release for a namespace the user may not write
    info = json.loads((foreign / "release.json").read_text())
    (foreign / "release.json").write_text(json.dumps({**info, "repo_id": "not-my-org/rms-test"}))
    rerender_card(foreign)
    tracebacks = []
    for release, repo, endpoint in ((foreign, "not-my-org/rms-test", hub.url), (v2, REPO, "http://127.0.0.1:9")):
        with pytest.raises(Exception) as error:
            publish_api(release, repo, "1.1.0", gated="auto", endpoint=endpoint)
        tracebacks.append("".join(traceback.format_exception(error.value)) + repr(error.value))
    assert "403" in tracebacks[0] and "ConnectError" in tracebacks[1]

    captured = capsys.readouterr()
    assert "commit:" in captured.out and caplog.records  # something was produced and logged
    for text in (captured.out, captured.err, caplog.text, *tracebacks):
        assert FAKE_TOKEN not in text
    for root in (v1, v2, foreign, hub.store.root, Path(hf_env["HF_HOME"])):
        for path in Path(root).rglob("*"):
            if path.is_file():
                assert FAKE_TOKEN.encode() not in path.read_bytes(), path


def test_gating_and_privacy(hub, hf_env, release_v1, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    assert publish(hub, release_v1[0], "1.0.0", "--private", "--gated", "auto") == 0
    info = HfApi(endpoint=hub.url, token=FAKE_TOKEN).dataset_info(REPO)
    assert info.private is True and info.gated == "auto"
    with pytest.raises(RepositoryNotFoundError):  # private: invisible without the token
        HfApi(endpoint=hub.url, token=False).dataset_info(REPO)


def test_publishing_without_gated_or_public_is_refused_in_one_line(hub, hf_env, release_v1, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    assert cli(["publish", str(release_v1[0]), "--repo", REPO, "--version", "1.0.0", "--endpoint", hub.url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--gated auto|manual" in err and "--public" in err
    assert hub.requests == []
    with pytest.raises(PublishError, match="choose who can download"):
        from generation.release.publish import publish as publish_api

        publish_api(release_v1[0], REPO, "1.0.0", gated=None, endpoint=hub.url)
    assert hub.requests == []


def test_public_publishes_ungated(hub, hf_env, release_v1, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    assert publish(hub, release_v1[0], "1.0.0", "--public") == 0
    assert HfApi(endpoint=hub.url, token=FAKE_TOKEN).dataset_info(REPO).gated is False


def test_a_hub_refusing_the_gating_setting_gets_no_commit(tmp_path, hf_env, release_v1, monkeypatch, capsys):
    from tests.hub.server import HubServer
    from tests.publish.conftest import ORG, USER

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    with HubServer(tmp_path / "hub", tokens={FAKE_TOKEN: USER}, orgs={USER: [ORG]}, supports_gating=False) as hub:
        assert publish(hub, release_v1[0], "1.0.0", "--gated", "auto") == 1
        err = capsys.readouterr().err
        assert "did not accept gated='auto'" in err and "nothing was committed" in err
        assert hub.refs(REPO)["tags"] == {}
        assert not [request for request in writes(hub) if "/commit/" in request or "/tag/" in request]


def test_a_changed_shard_byte_and_image_byte_refuse_the_publish_naming_file_and_row(hub, hf_env, release_v1, tmp_path,
                                                                                    monkeypatch, capsys):
    from tests.foundation.tampering import tamper_image, tamper_text

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    release = Path(shutil.copytree(release_v1[0], tmp_path / "release"))
    pairs_shard = release / "pairs" / "train-00000-of-00001.parquet"
    preference_shard = release / "preference" / "train-00000-of-00001.parquet"
    tamper_text(pairs_shard, row=0)
    tamper_image(preference_shard, row=1)

    assert publish(hub, release, "1.0.0") == 1
    err = capsys.readouterr().err
    assert "is not a valid release" in err and "nothing was uploaded" in err
    for shard in (pairs_shard, preference_shard):
        assert f"{shard}: sha256 differs from the one recorded in checksums.sha256" in err
    assert f"{pairs_shard}, row 0, field 'id'" in err and f"{preference_shard}, row 1, field 'image'" in err
    assert hub.requests == []


def test_missing_token_is_a_clear_error(hub, hf_env, release_v1, capsys):
    assert publish(hub, release_v1[0], "1.0.0") == 1
    assert "no Hugging Face token found" in capsys.readouterr().err
    assert hub.requests == []


def test_token_from_the_login_file_is_used(hub, hf_env, release_v1):
    from huggingface_hub import constants

    Path(constants.HF_TOKEN_PATH).parent.mkdir(parents=True, exist_ok=True)
    Path(constants.HF_TOKEN_PATH).write_text(FAKE_TOKEN)
    assert publish(hub, release_v1[0], "1.0.0") == 0
    assert "v1.0.0" in hub.refs(REPO)["tags"]


def test_the_committed_sample_release_publishes_and_loads_back(tmp_path, hf_env, sample_release, monkeypatch,
                                                              capsys):
    from tests.hub.server import HubServer
    from tests.publish.conftest import USER

    info = json.loads((sample_release / "release.json").read_text())
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    owner = info["repo_id"].split("/")[0]
    with HubServer(tmp_path / "hub", tokens={FAKE_TOKEN: USER}, orgs={USER: [owner]}) as hub:
        assert publish(hub, sample_release, info["version"], repo=info["repo_id"]) == 0
        loaded = load_from_hub(hub, hf_env, f"v{info['version']}", tmp_path, repo=info["repo_id"])
    assert_loads_as(loaded, rows_on_disk(sample_release))


def test_stamp_writes_version_and_repo_into_the_card_then_publishes(hub, hf_env, release_v1, tmp_path, monkeypatch,
                                                                   capsys):
    from generation.release.validate import validate_release

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    release = Path(shutil.copytree(release_v1[0], tmp_path / "release"))
    assert publish(hub, release, "2.0.0") == 1  # release.json says 1.0.0: refused, with the fix named
    assert "add --stamp" in capsys.readouterr().err

    assert publish(hub, release, "2.0.0", "--stamp", "--dry-run") == 0
    assert "would stamp" in capsys.readouterr().out
    assert json.loads((release / "release.json").read_text())["version"] == "1.0.0", "a dry run changes nothing"

    assert publish(hub, release, "2.0.0", "--stamp") == 0
    assert json.loads((release / "release.json").read_text())["version"] == "2.0.0"
    assert 'revision="v2.0.0"' in (release / "README.md").read_text()
    assert validate_release(str(release)) == []
    assert "v2.0.0" in hub.refs(REPO)["tags"]


@pytest.mark.parametrize("stray", [".env", "notes.txt", "gallery.html", "pairs/scratch.parquet", "extra/data.bin"])
def test_a_stray_file_in_the_release_refuses_the_publish_before_any_request(hub, hf_env, release_v1, tmp_path,
                                                                            monkeypatch, capsys, stray):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    release = Path(shutil.copytree(release_v1[0], tmp_path / "release"))
    (release / stray).parent.mkdir(parents=True, exist_ok=True)
    (release / stray).write_text("OPENAI_API_KEY=sk-do-not-publish\n")

    for extra in (("--dry-run",), ()):
        assert publish(hub, release, "1.0.0", *extra) == 1
        err = capsys.readouterr().err
        assert f"holds 1 file(s) that are not part of the release layout: {stray}." in err and "Nothing was uploaded" in err
    assert hub.requests == []


def test_only_declared_files_are_uploaded(hub, hf_env, release_v1, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    release = Path(shutil.copytree(release_v1[0], tmp_path / "release"))
    (release / ".cache" / "huggingface").mkdir(parents=True)  # what `hf download --local-dir` leaves: skipped
    (release / ".cache" / "huggingface" / "meta").write_text("local metadata")
    assert publish(hub, release, "1.0.0") == 0
    uploaded = set(hub.snapshot(REPO, "v1.0.0")) - {".gitattributes"}
    assert uploaded == set(release_files(release)) and not any(path.startswith(".cache") for path in uploaded)


def test_a_release_another_process_is_writing_is_not_published(hub, hf_env, release_v1, monkeypatch, capsys):
    from generation.engine.outputs import locked

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    with locked(release_v1[0]):  # as `merge --out` or `build-sample --out` would hold it
        assert publish(hub, release_v1[0], "1.0.0") == 2
    assert "another process is writing it" in capsys.readouterr().err
    assert hub.requests == []
