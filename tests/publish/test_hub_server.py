"""The local Hub look-alike behaves like the Hub for the real huggingface_hub client (what other tests rely on)."""

from __future__ import annotations

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, HfFileSystem, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session

from tests.publish.conftest import FAKE_TOKEN, ORG, USER

pytestmark = pytest.mark.slow

REPO = f"{ORG}/server-semantics"
PARQUET_LIKE = b"PAR1" + bytes(range(256)) * 40 + b"PAR1"  # binary: goes through the LFS upload flow


@pytest.fixture
def api(hub, hf_env) -> HfApi:
    api = HfApi(endpoint=hub.url, token=FAKE_TOKEN)
    api.create_repo(REPO, repo_type="dataset")
    return api


def commit(api, operations, message="change"):
    return api.create_commit(REPO, operations, commit_message=message, repo_type="dataset")


def test_whoami_and_auth(hub, hf_env):
    assert HfApi(endpoint=hub.url, token=FAKE_TOKEN).whoami()["name"] == USER
    with pytest.raises(HfHubHTTPError) as error:
        HfApi(endpoint=hub.url, token="hf_wrong").whoami()
    assert error.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as error:  # writes need a token
        HfApi(endpoint=hub.url, token=False).create_repo(f"{ORG}/x", repo_type="dataset")
    assert error.value.response.status_code == 401


def test_commits_are_snapshots_and_revisions_resolve_branch_tag_and_sha(api, hub):
    first = commit(api, [CommitOperationAdd("data/a.parquet", PARQUET_LIKE), CommitOperationAdd("notes.txt", b"v1")])
    api.create_tag(REPO, tag="v1", revision=first.oid, repo_type="dataset")
    second = commit(api, [CommitOperationAdd("notes.txt", b"v2"), CommitOperationDelete("data/a.parquet")])

    assert hub.snapshot(REPO, "v1") == {".gitattributes": hub.snapshot(REPO)[".gitattributes"],
                                        "data/a.parquet": PARQUET_LIKE, "notes.txt": b"v1"}
    assert hub.snapshot(REPO, first.oid) == hub.snapshot(REPO, "v1")
    assert set(hub.snapshot(REPO, "main")) == {".gitattributes", "notes.txt"}
    assert api.dataset_info(REPO).sha == second.oid
    assert api.dataset_info(REPO, revision="v1").sha == first.oid
    refs = api.list_repo_refs(REPO, repo_type="dataset")
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", first.oid)]
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", second.oid)]
    with pytest.raises(HfHubHTTPError) as error:  # tags never move
        api.create_tag(REPO, tag="v1", revision=second.oid, repo_type="dataset")
    assert error.value.response.status_code == 409
    with pytest.raises(RevisionNotFoundError):
        api.dataset_info(REPO, revision="v9")


def test_lfs_and_regular_files_are_listed_like_the_hub(api):
    commit(api, [CommitOperationAdd("data/a.parquet", PARQUET_LIKE), CommitOperationAdd("README.md", b"# hi\n")])
    tree = {entry.path: entry for entry in api.list_repo_tree(REPO, repo_type="dataset", recursive=True)}
    assert set(tree) == {".gitattributes", "README.md", "data", "data/a.parquet"}
    assert tree["data/a.parquet"].lfs is not None and tree["data/a.parquet"].size == len(PARQUET_LIKE)
    assert tree["README.md"].lfs is None
    top = [entry.path for entry in api.list_repo_tree(REPO, repo_type="dataset")]
    assert sorted(top) == [".gitattributes", "README.md", "data"]
    info = api.get_paths_info(REPO, ["data", "README.md", "missing"], repo_type="dataset")
    assert sorted(entry.path for entry in info) == ["README.md", "data"]
    assert api.list_repo_files(REPO, repo_type="dataset") == [".gitattributes", "README.md", "data/a.parquet"]


def test_downloads_by_file_and_by_byte_range(api, hub, tmp_path):
    first = commit(api, [CommitOperationAdd("data/a.parquet", PARQUET_LIKE)])
    path = hf_hub_download(REPO, "data/a.parquet", repo_type="dataset", revision=first.oid, endpoint=hub.url,
                           cache_dir=tmp_path / "cache", token=FAKE_TOKEN)
    assert open(path, "rb").read() == PARQUET_LIKE
    fs = HfFileSystem(endpoint=hub.url, token=FAKE_TOKEN, skip_instance_cache=True)
    with fs.open(f"datasets/{REPO}@{first.oid}/data/a.parquet", "rb", block_size=100) as handle:
        handle.seek(1000)
        assert handle.read(50) == PARQUET_LIKE[1000:1050]
    assert fs.glob(f"datasets/{REPO}@{first.oid}/data/*.parquet") == [f"datasets/{REPO}@{first.oid}/data/a.parquet"]
    url = f"{hub.url}/datasets/{REPO}/resolve/v0/data/a.parquet"
    api.create_tag(REPO, tag="v0", revision=first.oid, repo_type="dataset")
    partial = get_session().get(url, headers={"Range": "bytes=10-19"})
    assert partial.status_code == 206 and partial.content == PARQUET_LIKE[10:20]
    assert partial.headers["Content-Range"] == f"bytes 10-19/{len(PARQUET_LIKE)}"
    assert partial.headers["X-Repo-Commit"] == first.oid
    assert get_session().get(url, headers={"Range": "bytes=-4"}).content == b"PAR1"
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "nope.txt", repo_type="dataset", endpoint=hub.url, cache_dir=tmp_path / "cache",
                        token=FAKE_TOKEN)


def test_private_repos_are_invisible_without_the_token(hub, hf_env):
    HfApi(endpoint=hub.url, token=FAKE_TOKEN).create_repo(REPO, repo_type="dataset", private=True)
    assert HfApi(endpoint=hub.url, token=FAKE_TOKEN).dataset_info(REPO).private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token=False).dataset_info(REPO)
