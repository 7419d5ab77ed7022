"""Download benchmarks from where their authors publish them, pinned and checked:
``python -m eval.benchmarks fetch [NAMES]``.

For each benchmark in the registry (`judging.sources.published`): resolve the pinned revision on the Hub
(``HF_ENDPOINT`` / ``--endpoint`` for a mirror), download its annotation and image files with
``huggingface_hub`` into ``<dir>/<name>/`` (repo layout; ``--dir``, else ``$RMS_BENCHMARKS_DIR``, else
``~/.cache/rms/benchmarks``), check every file's bytes, extract image archives, and write the manifest
(`judging.sources.fetched`) last. Sources then read the fetched copy without ``image_root``.

Checks: a file's sha256 must equal the one pinned in the registry; without a pin, the Hub's own LFS sha256 or
git blob id. A mismatch is an error naming the file (the bad download is removed). Resume: a file already
present whose bytes check out is not downloaded again; with a pinned commit and a complete manifest nothing
is asked of the Hub at all. A gated repo without a token or accepted terms is one line with its access URL.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from atomic_files import write_atomic
from judging.sources.fetched import MANIFEST, benchmarks_dir, read_manifest
from judging.sources.published import PUBLISHED, Publication, load_publications
from rms_dataset import file_sha256
from typed_config import ConfigError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP clients' connection errors (huggingface_hub uses httpx, or its httpx2 fork, or requests)."""
    import importlib

    errors: list[type[BaseException]] = [OSError]
    for module, name in (("httpx", "TransportError"), ("httpx2", "TransportError"), ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


class FetchError(RuntimeError):
    """A benchmark could not be fetched; ``str(error)`` is one line saying which and what to do."""


@dataclass
class Fetched:
    name: str
    repo_id: str
    commit: str
    folder: Path
    downloaded: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)  # already present, bytes checked, not downloaded

    def line(self) -> str:
        return (f"{self.name}: {self.repo_id}@{self.commit[:12]}: {len(self.downloaded)} downloaded, "
                f"{len(self.verified)} already present and verified -> {self.folder}")


def git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class RepoFile:
    """A file to fetch and the checksum its bytes must have (``kind``: sha256 or git blob id)."""

    path: str
    kind: str
    expected: str
    whence: str  # where the expected value comes from, for the error message

    def matches(self, local: Path) -> bool:
        return (file_sha256(local) if self.kind == "sha256" else git_blob_id(local)) == self.expected


def fetch_benchmark(name: str, publication: Publication, root: Path, *, endpoint: str | None = None,
                    token: str | None = None, say=print) -> Fetched:
    """Fetch one benchmark into ``root/name`` (see the module docstring); raises `FetchError`."""
    if publication.repo_id is None:
        raise FetchError(f"{name}: not published on the Hub, nothing to fetch ({publication.note})")
    folder = root / name
    manifest = read_manifest(folder)
    if publication.pinned and _complete(manifest, folder, publication):  # resume without asking the Hub
        files = sorted(manifest["files"])
        return Fetched(name, publication.repo_id, manifest["commit"], folder, verified=files)
    commit, wanted = _resolve(name, publication, endpoint, token)
    # until every file is checked, no source may read this folder as a fetched copy (files already here stay:
    # the next fetch resumes from them)
    (folder / MANIFEST).unlink(missing_ok=True)
    result = Fetched(name, publication.repo_id, commit, folder)
    hashes: dict[str, str] = {}
    for repo_file in wanted:
        local = folder / repo_file.path
        if local.is_file() and repo_file.matches(local):
            result.verified.append(repo_file.path)
        else:
            if local.exists():
                say(f"{name}: {repo_file.path}: the local copy does not match its checksum; downloading it again")
            _download(name, publication, repo_file.path, commit, folder, endpoint, token, force=local.exists())
            if not repo_file.matches(local):
                local.unlink()
                raise FetchError(f"{name}: {repo_file.path} downloaded from {publication.repo_id}@{commit[:12]} does "
                                 f"not match its {repo_file.kind} {repo_file.expected} ({repo_file.whence}); the "
                                 "download is corrupt or the file changed upstream: fetch again, and if it persists "
                                 "check the repo before changing the pin")
            result.downloaded.append(repo_file.path)
        hashes[repo_file.path] = file_sha256(local)
    for archive in publication.image_archives:
        _extract(folder / archive, hashes[archive], manifest, folder)
    write_atomic(folder / MANIFEST, json.dumps({
        "repo_id": publication.repo_id, "revision": publication.revision, "commit": commit,
        "annotations": publication.annotations[0] if publication.annotations else None,
        "image_root": publication.image_root, "files": hashes,
        "extracted": {archive: hashes[archive] for archive in publication.image_archives},
    }, indent=2, sort_keys=True) + "\n")
    return result


def _complete(manifest: dict | None, folder: Path, publication: Publication) -> bool:
    """The manifest is of this pinned commit and every file in it is there with its recorded sha256."""
    if not manifest or manifest.get("repo_id") != publication.repo_id or manifest.get("commit") != publication.revision:
        return False
    files = manifest.get("files") or {}
    for path, digest in files.items():
        local = folder / path
        if not local.is_file() or file_sha256(local) != publication.sha256.get(path, digest):
            return False
    return bool(files)


def _resolve(name: str, publication: Publication, endpoint: str | None,
             token: str | None) -> tuple[str, list[RepoFile]]:
    """The commit the revision names and the files to fetch, each with the checksum it must have."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError, \
        RevisionNotFoundError

    revision = publication.revision or "main"
    try:
        info = HfApi(endpoint=endpoint, token=token).dataset_info(publication.repo_id, revision=revision,
                                                                  files_metadata=True)
    except RevisionNotFoundError:
        raise FetchError(f"{name}: {publication.repo_id} has no revision {revision!r}; fix the registry's revision "
                         f"(see {publication.url})") from None
    except RepositoryNotFoundError as error:
        raise _access_error(name, publication, error) from None
    except OfflineModeIsEnabled:
        raise FetchError(f"{name}: HF_HUB_OFFLINE is set, so {publication.repo_id} cannot be fetched; unset it "
                         "(or fetch on a machine that can reach the Hub)") from None
    except (HfHubHTTPError, *_transport_errors()) as error:
        raise FetchError(f"{name}: cannot reach {publication.repo_id} on {endpoint or 'the Hub'}: "
                         f"{str(error).splitlines()[0]}") from None
    siblings = {sibling.rfilename: sibling for sibling in info.siblings or []}
    wanted = list(publication.annotations) + list(publication.image_archives)
    absent = [path for path in wanted if path not in siblings]
    if absent:
        raise FetchError(f"{name}: {publication.repo_id}@{info.sha[:12]} has no {absent}; fix the registry entry's "
                         "annotations / image_archives")
    images = sorted(path for path in siblings
                    if any(fnmatch.fnmatchcase(path, pattern) for pattern in publication.images))
    if publication.images and not images:
        raise FetchError(f"{name}: no file of {publication.repo_id}@{info.sha[:12]} matches images "
                         f"{publication.images}; fix the registry entry")
    files = []
    for path in wanted + [path for path in images if path not in wanted]:
        sibling = siblings[path]
        if path in publication.sha256:
            files.append(RepoFile(path, "sha256", publication.sha256[path], "pinned in the registry"))
        elif sibling.lfs is not None:
            files.append(RepoFile(path, "sha256", sibling.lfs.sha256, "the Hub's LFS sha256"))
        else:
            files.append(RepoFile(path, "git blob id", sibling.blob_id, "the Hub's git blob id"))
    return info.sha, files


def _download(name: str, publication: Publication, path: str, commit: str, folder: Path, endpoint: str | None,
              token: str | None, *, force: bool) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        hf_hub_download(publication.repo_id, path, repo_type="dataset", revision=commit, local_dir=folder,
                        endpoint=endpoint, token=token, force_download=force)
    except RepositoryNotFoundError as error:  # GatedRepoError is one
        raise _access_error(name, publication, error) from None
    except (HfHubHTTPError, *_transport_errors()) as error:
        raise FetchError(f"{name}: downloading {path} from {publication.repo_id}@{commit[:12]} failed: "
                         f"{str(error).splitlines()[0]}; run fetch again to resume") from None


def _access_error(name: str, publication: Publication, error: Exception) -> FetchError:
    from huggingface_hub.errors import GatedRepoError

    if isinstance(error, GatedRepoError):
        return FetchError(f"{name}: {publication.repo_id} is gated: accept its terms at {publication.url} with your "
                          "account, then log in (`huggingface-cli login`, or set HF_TOKEN) and fetch again")
    return FetchError(f"{name}: {publication.repo_id} was not found or is private ({publication.url}); log in "
                      "(`huggingface-cli login` or HF_TOKEN) if you have access, or fix the registry's repo_id")


def _extract(archive: Path, digest: str, manifest: dict | None, folder: Path) -> None:
    """Extract an image archive beside itself, once per archive content (recorded in the manifest)."""
    if manifest and (manifest.get("extracted") or {}).get(archive.relative_to(folder).as_posix()) == digest:
        return
    tar = archive.name.endswith(TAR_SUFFIXES)
    shutil.unpack_archive(archive, archive.parent, **({"filter": "data"} if tar else {}))


# ------------------------------------------------------------------------------------------------ command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eval.benchmarks fetch", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Download benchmarks' annotations and images from the Hub, pinned and checked.",
        epilog=("Each benchmark goes to DIR/<name>/ with a manifest (rms_fetched.json: repo, commit, sha256 of\n"
                "every file). Files already there whose checksum matches are not downloaded again. Sources read a\n"
                "fetched copy when given no annotations/image_root/hub_dataset option, and the cell key gets\n"
                "rev=<commit>. Exit 1 when a benchmark failed (checksum mismatch, gated, unreachable), 2 on usage\n"
                "errors. See docs/eval_benchmarks.md, 'Fetching benchmarks'."))
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="benchmarks to fetch (default: every one the registry has on the Hub)")
    parser.add_argument("--dir", type=Path, help="where to put them (default: $RMS_BENCHMARKS_DIR, else "
                                                 "~/.cache/rms/benchmarks; sources look in the default only)")
    parser.add_argument("--registry", type=Path,
                        help="a YAML registry to use instead of the built-in one (judging/sources/published.py): "
                             "{name: {repo_id, revision, ...}}")
    parser.add_argument("--endpoint", help="Hub endpoint (default: $HF_ENDPOINT, else huggingface.co)")
    parser.add_argument("--list", action="store_true", help="print the registry (where each benchmark is published)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        registry = load_publications(args.registry) if args.registry else PUBLISHED
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.list:
        for name, publication in sorted(registry.items()):
            where = f"{publication.repo_id}@{publication.revision or 'main'}" if publication.repo_id else "-"
            print(f"{name}: {where}" + (" (gated)" if publication.gated else "") + f" | {publication.note}")
        return 0
    unknown = [name for name in args.names if name not in registry]
    if unknown:
        print(f"error: unknown benchmark(s) {unknown}; the registry has {sorted(registry)}", file=sys.stderr)
        return 2
    fetchable = {name for name, p in registry.items() if p.repo_id and p.annotations}  # a source needs its annotations
    names = args.names or sorted(fetchable)
    root = (args.dir or benchmarks_dir()).expanduser()
    endpoint = args.endpoint or os.environ.get("HF_ENDPOINT") or None
    failures = 0
    for name in names:
        publication = registry[name]
        try:
            if name not in fetchable:
                raise FetchError(f"{name}: nothing to fetch: {publication.note}")
            print(fetch_benchmark(name, publication, root, endpoint=endpoint).line())
        except FetchError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0
