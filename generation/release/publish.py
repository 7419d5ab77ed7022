"""Publish a release directory to a Hugging Face Hub dataset repo as one commit, tagged vX.Y.Z.

Access must be chosen: --gated auto|manual (users request access and see the card's terms; recommended,
the data holds harmful text) or --public. Publishing with neither is refused.

Steps: validate the release, its recorded sha256 checksums included (refuse with every problem listed);
check the version (semver X.Y.Z, no tag vX.Y.Z yet, greater than the latest v* tag) and that release.json
names this version and repo; create the dataset repo if needed (--private); set the gating; push every file
of the release as ONE commit on main that also deletes the remote files the release no longer has (the repo
then equals the release; the Hub's own .gitattributes is kept); tag that commit vX.Y.Z. Nothing is uploaded
when a check fails, and nothing is committed when the Hub refuses the gating setting.

Only the files the release layout declares are uploaded (`generation.release.write.is_declared`: the card,
release.json, taxonomy.json/.png, pipeline_config.yaml, rejects.jsonl, <config>/<split>-*.parquet). Any
other file in the release directory (a stray ``.env``, notes, a gallery) refuses the publish, naming it.

--dry-run prints the plan (repo, created or not, files added / unchanged / deleted with sizes, tag) and
changes nothing. The token comes from HF_TOKEN or `hf auth login` (huggingface_hub.get_token()) and is
never printed. --endpoint (or HF_ENDPOINT) points at another Hub, e.g. a local test server.

Example: python -m generation publish releases/v1.0.0 --repo my-org/rms --version 1.0.0 --gated auto
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import rms_dataset as rms
from generation.release.card import RELEASE_INFO
from generation.release.write import TOP_LEVEL_FILES, is_declared

GATING = ("auto", "manual")
HUB_MANAGED_FILES = {".gitattributes"}  # created by the Hub with every repo; not part of a release
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PublishError(Exception):
    """A publish that must not happen; the message says why and what to do. Nothing was uploaded."""


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = SEMVER.match(text)
        if not match:
            hint = " (give it without the leading 'v')" if SEMVER.match(text.removeprefix("v")) else ""
            raise PublishError(f"version {text!r} is not semantic versioning MAJOR.MINOR.PATCH, e.g. 1.0.0{hint}")
        return cls(*(int(part) for part in match.groups()))

    @property
    def tag(self) -> str:
        return f"v{self}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class LocalFile:
    path_in_repo: str
    local_path: Path
    size: int


@dataclass(frozen=True)
class RemoteFile:
    path_in_repo: str
    size: int
    git_oid: str
    lfs_sha256: str | None

    def same_content(self, local: LocalFile) -> bool:
        """LFS files compare by sha256 of the content, regular files by git blob sha1 (what the Hub reports)."""
        if local.size != self.size:
            return False
        if self.lfs_sha256 is not None:
            digest, expected = hashlib.sha256(), self.lfs_sha256
        else:
            digest, expected = hashlib.sha1(b"blob %d\0" % local.size), self.git_oid
        with local.local_path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest() == expected


@dataclass(frozen=True)
class RemoteState:
    """What the Hub has: nothing (repo absent), or the head of main, its files, tags and settings."""

    exists: bool
    head: str | None = None
    files: dict[str, RemoteFile] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    private: bool | None = None
    gated: str | bool | None = None


@dataclass(frozen=True)
class PublishPlan:
    repo_id: str
    endpoint: str
    version: Version
    message: str
    remote: RemoteState
    private: bool
    gated: str | bool  # "auto" / "manual", or False for a public dataset
    add: list[LocalFile]
    unchanged: list[LocalFile]
    delete: list[RemoteFile]
    latest_tag: str | None

    @property
    def create_repo(self) -> bool:
        return not self.remote.exists

    @property
    def set_gated(self) -> bool:
        return (self.remote.gated or False) != self.gated

    @property
    def make_private(self) -> bool:
        return self.private and self.remote.exists and not self.remote.private

    @property
    def repo_url(self) -> str:
        return f"{self.endpoint}/datasets/{self.repo_id}"


@dataclass(frozen=True)
class PublishResult:
    commit_url: str
    commit_oid: str
    tag: str


# ----------------------------------------------------------------------------------------------------------
# Local side
# ----------------------------------------------------------------------------------------------------------


def release_files(release: Path) -> dict[str, LocalFile]:
    """Every file of the release directory that the release layout declares, keyed by its POSIX path in the
    repo; a PublishError naming any other file (nothing but the release is ever uploaded)."""
    files, strays = {}, []
    for path in sorted(release.rglob("*")):
        relative = path.relative_to(release)
        if rms.UNRECORDED_DIRS.intersection(relative.parts) or path.is_dir():
            continue
        if is_declared(relative.as_posix()) and path.is_file() and not path.is_symlink():
            files[relative.as_posix()] = LocalFile(relative.as_posix(), path, path.stat().st_size)
        else:
            strays.append(relative.as_posix() + (" (a symlink)" if path.is_symlink() else ""))
    if strays:
        raise PublishError(
            f"{release} holds {len(strays)} file(s) that are not part of the release layout: {', '.join(strays)}. "
            "Nothing was uploaded. Move them out of the release directory (a release holds "
            f"{', '.join(sorted(TOP_LEVEL_FILES))} and <config>/<split>-NNNNN-of-NNNNN.parquet) and publish again.")
    return files


def validate(release: Path) -> None:
    """Refuse an invalid release, listing every problem (file, row, field), a file or row whose bytes differ
    from what the release recorded included."""
    from generation.release.validate import validate_release

    problems = validate_release(str(release))
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise PublishError(f"{release} is not a valid release ({len(problems)} problem(s)); nothing was uploaded:\n"
                           f"{listing}\nFix them (python -m generation validate {release}) and publish again.")


def check_release_info(release: Path, repo_id: str, version: Version) -> None:
    """Refuse a release whose release.json (rendered into the card) names another version or repo."""
    info_path = release / RELEASE_INFO
    if not info_path.exists():
        return
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as error:
        raise PublishError(f"{info_path}: not valid JSON ({error}); rebuild the release with write_release") from error
    wrong = [(key, info.get(key), wanted) for key, wanted in (("version", str(version)), ("repo_id", repo_id))
             if info.get(key) is not None and info.get(key) != wanted]
    if wrong:
        details = "; ".join(f"{key} is {have!r}, publishing as {want!r}" for key, have, want in wrong)
        raise PublishError(
            f"{info_path}: {details}. The dataset card shows these values, so they must match: add --stamp to "
            f"write them into {RELEASE_INFO} and the card, or rebuild the release with "
            "write_release(..., version=..., repo_id=...)."
        )


# ----------------------------------------------------------------------------------------------------------
# Remote side
# ----------------------------------------------------------------------------------------------------------


def read_remote(api, repo_id: str) -> RemoteState:
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = api.dataset_info(repo_id)
    except RepositoryNotFoundError:
        return RemoteState(exists=False)
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    files = {}
    for entry in api.list_repo_tree(repo_id, repo_type="dataset", revision=info.sha, recursive=True):
        if hasattr(entry, "size"):  # RepoFile; RepoFolder has no size
            files[entry.path] = RemoteFile(entry.path, entry.size, entry.blob_id,
                                           entry.lfs.sha256 if entry.lfs else None)
    return RemoteState(exists=True, head=info.sha, files=files, tags={t.name: t.target_commit for t in refs.tags},
                       private=info.private, gated=info.gated)


def latest_version_tag(tags: dict[str, str]) -> tuple[str, Version] | None:
    versions = []
    for name in tags:
        try:
            versions.append((name, Version.parse(name.removeprefix("v"))))
        except PublishError:
            continue  # tags that are not vX.Y.Z do not take part in ordering
    return max(versions, key=lambda item: item[1], default=None)


def check_version(version: Version, remote: RemoteState) -> str | None:
    """Refuse an existing or not-newer version; returns the latest existing version tag (or None)."""
    if version.tag in remote.tags:
        raise PublishError(f"tag {version.tag} already exists (commit {remote.tags[version.tag][:12]}); a published "
                           "version is never changed. Publish a new version instead.")
    latest = latest_version_tag(remote.tags)
    if latest is not None and latest[1] >= version:
        raise PublishError(f"version {version} is not greater than the latest existing tag {latest[0]}; "
                           f"publish a version after {latest[1]}.")
    return latest[0] if latest else None


def check_access(gated: str | bool | None) -> str | bool:
    """The access setting: "auto" or "manual" gating, or False for public; refuses a missing choice."""
    if gated is None:
        raise PublishError("choose who can download: --gated auto|manual (access requests with the card's terms; "
                           "recommended, the data holds harmful text) or --public")
    if gated is not False and gated not in GATING:
        raise PublishError(f"gated={gated!r}: give 'auto', 'manual' or False (public)")
    return gated


def plan_publish(api, release: Path, repo_id: str, version: Version, *, gated: str | bool | None,
                 private: bool = False, message: str | None = None, check_info: bool = True) -> PublishPlan:
    """Read-only: everything `execute` would do, after every check that can refuse."""
    gated = check_access(gated)
    if not REPO_ID.match(repo_id):
        raise PublishError(f"--repo {repo_id!r} is not ORG/NAME (letters, digits, '-', '_', '.')")
    if not release.is_dir():
        raise PublishError(f"{release}: not a directory; pass the release directory written by merge/build-sample")
    local = release_files(release)  # refuses stray files before any request
    validate(release)
    remote = read_remote(api, repo_id)
    latest = check_version(version, remote)
    if check_info:
        check_release_info(release, repo_id, version)
    add, unchanged = [], []
    for path, local_file in local.items():
        remote_file = remote.files.get(path)
        (unchanged if remote_file and remote_file.same_content(local_file) else add).append(local_file)
    delete = [f for p, f in sorted(remote.files.items()) if p not in local and p not in HUB_MANAGED_FILES]
    return PublishPlan(repo_id=repo_id, endpoint=api.endpoint.rstrip("/"), version=version,
                       message=message or f"Release {version.tag}", remote=remote, private=private, gated=gated,
                       add=add, unchanged=unchanged, delete=delete, latest_tag=latest)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def render_plan(plan: PublishPlan) -> str:
    if plan.create_repo:
        repo = f"{plan.repo_url} (will be CREATED, {'private' if plan.private else 'public'})"
    else:
        repo = f"{plan.repo_url} (exists, main at {plan.remote.head[:12]})"
    lines = [f"repo:    {repo}"]
    if plan.make_private:
        lines.append("setting: visibility public -> private")
    if plan.set_gated:
        lines.append(f"setting: gated {plan.remote.gated or False!r} -> {plan.gated!r}")
    lines.append(f"access:  {'gated (' + plan.gated + ' approval)' if plan.gated else 'public'}")
    lines.append(f"tag:     {plan.version.tag} (latest existing version tag: {plan.latest_tag or 'none'})")
    lines.append(f"commit:  {plan.message!r} on main: {len(plan.add)} to upload, {len(plan.unchanged)} unchanged, "
                 f"{len(plan.delete)} to delete")
    lines += [f"  + {_size(f.size):>9}  {f.path_in_repo}" for f in plan.add]
    lines += [f"  = {_size(f.size):>9}  {f.path_in_repo}" for f in plan.unchanged]
    lines += [f"  - {_size(f.size):>9}  {f.path_in_repo}" for f in plan.delete]
    return "\n".join(lines)


def _apply_gating(api, plan: PublishPlan) -> None:
    """Set the gating before anything is committed; a Hub that refuses it stops the publish."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.update_repo_settings(plan.repo_id, repo_type="dataset", gated=plan.gated)
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        created = " (the repo was created, empty)" if plan.create_repo else ""
        raise PublishError(
            f"{plan.endpoint} did not accept gated={plan.gated!r} (HTTP {status}); nothing was committed{created}. "
            f"Set access requests by hand in the repo settings ({plan.repo_url}/settings), then publish again."
        ) from error


def execute(api, plan: PublishPlan, release: Path) -> PublishResult:
    """Create the repo if needed, apply settings, push one commit, tag it. Refuses if main moved since the plan."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.errors import HfHubHTTPError

    if plan.create_repo:
        api.create_repo(plan.repo_id, repo_type="dataset", private=plan.private, exist_ok=False)
        parent = api.dataset_info(plan.repo_id).sha
    else:
        parent = plan.remote.head
    if plan.make_private:
        api.update_repo_settings(plan.repo_id, repo_type="dataset", private=True)
    if plan.set_gated:
        _apply_gating(api, plan)
    operations = [CommitOperationAdd(f.path_in_repo, str(f.local_path)) for f in plan.add + plan.unchanged]
    operations += [CommitOperationDelete(f.path_in_repo) for f in plan.delete]
    commit = api.create_commit(plan.repo_id, operations, commit_message=plan.message, repo_type="dataset",
                               parent_commit=parent,
                               commit_description=f"RMS release {plan.version} published from {release.name}")
    try:
        api.create_tag(plan.repo_id, tag=plan.version.tag, revision=commit.oid, repo_type="dataset",
                       tag_message=plan.message)
    except HfHubHTTPError as error:
        raise PublishError(
            f"the release was committed ({commit.commit_url}) but tagging it {plan.version.tag} failed: {error}. "
            "Run the same command again: the unchanged files are skipped and only the tag is created."
        ) from error
    return PublishResult(commit_url=commit.commit_url, commit_oid=commit.oid, tag=plan.version.tag)


def hub_api(endpoint: str | None):
    """An HfApi with the user's token from the usual sources (HF_TOKEN, `hf auth login`); never printed."""
    from huggingface_hub import HfApi, get_token

    return HfApi(endpoint=endpoint, token=get_token())


def stamp_release(release: Path, repo_id: str, version: Version) -> None:
    """Write `version` and `repo_id` into release.json and re-render the card (no other file changes)."""
    from generation.release.card import ReleaseInfo
    from generation.release.write import rerender_card

    info = ReleaseInfo.read(release)
    ReleaseInfo(**{**info.__dict__, "version": str(version), "repo_id": repo_id}).write(release)
    rerender_card(release)


def publish(release: str | Path, repo_id: str, version: str, *, gated: str | bool | None, private: bool = False,
            dry_run: bool = False, endpoint: str | None = None, message: str | None = None,
            stamp: bool = False, out=None) -> PublishResult | None:
    """Plan, print the plan, and (unless `dry_run`) execute it. Raises PublishError before any upload.
    `gated`: "auto" or "manual" (access requests), or False for a public dataset; None is refused.

    `stamp=True` first writes `version` and `repo_id` into the release's release.json and card, once every
    other check has passed (a dry run only reports that it would)."""
    out = out or sys.stdout
    release = Path(release)
    check_access(gated)
    api = hub_api(endpoint)
    if not dry_run and api.token is None:
        raise PublishError("no Hugging Face token found: set HF_TOKEN or run `hf auth login` "
                           "(a token with write access to the target namespace)")
    parsed = Version.parse(version)
    plan = plan_publish(api, release, repo_id, parsed, private=private, gated=gated, message=message,
                        check_info=not stamp)
    if stamp and not dry_run:
        stamp_release(release, repo_id, parsed)
        plan = plan_publish(api, release, repo_id, parsed, private=private, gated=gated, message=message)
    elif stamp:
        print(f"would stamp {release / RELEASE_INFO} and the card with version {parsed} and repo {repo_id}", file=out)
    print(("Dry run, nothing is changed. Plan:\n" if dry_run else "Publishing:\n") + render_plan(plan), file=out)
    if dry_run:
        if api.token is None:
            print("note: no token found, so a private repo would look absent; the real run needs one.", file=out)
        return None
    result = execute(api, plan, release)
    print(f"commit:  {result.commit_url}", file=out)
    print(f"tagged:  {result.tag}", file=out)
    endpoint_note = "" if plan.endpoint == "https://huggingface.co" else f"  # with HF_ENDPOINT={plan.endpoint}"
    print(f'load:    load_dataset("{repo_id}", "pairs", revision="{result.tag}"){endpoint_note}', file=out)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("release", help="release directory (README.md + <config>/<split>-NNNNN-of-NNNNN.parquet)")
    parser.add_argument("--repo", required=True, help="target dataset repo ORG/NAME (created if missing)")
    parser.add_argument("--version", required=True, help="semantic version X.Y.Z; the commit is tagged vX.Y.Z")
    parser.add_argument("--private", action="store_true", help="create the repo private (or make it private)")
    access = parser.add_mutually_exclusive_group()
    access.add_argument("--gated", choices=GATING, default=None,
                        help="require access requests (auto-approved or manual); users see the card's gating prompt "
                             "and terms. One of --gated / --public is required")
    access.add_argument("--public", action="store_true", help="no access requests: anyone can download")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    parser.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")
    parser.add_argument("--message", default=None, help="commit message (default: 'Release vX.Y.Z')")
    parser.add_argument("--stamp", action="store_true",
                        help="write --version and --repo into the release's release.json and re-render its card "
                             "before publishing (otherwise a release that names another version/repo is refused)")


def _transport_error() -> type[Exception]:
    """The HTTP client's connection-level error (huggingface_hub 2.x uses httpx2, 1.x uses httpx)."""
    try:
        from httpx2 import TransportError
    except ImportError:
        from httpx import TransportError
    return TransportError


def main(args: argparse.Namespace) -> int:
    from huggingface_hub.errors import HfHubHTTPError

    if args.gated is None and not args.public:
        print("error: choose who can download: --gated auto|manual (access requests with the card's terms; "
              "recommended, the data holds harmful text) or --public", file=sys.stderr)
        return 2
    from generation.engine.outputs import DirectoryBusy, locked

    try:
        with locked(args.release, option="RELEASE"):  # no writer replaces the release while it is checked and sent
            publish(args.release, args.repo, args.version, private=args.private, gated=args.gated or False,
                    dry_run=args.dry_run, endpoint=args.endpoint, message=args.message, stamp=args.stamp)
    except DirectoryBusy as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except HfHubHTTPError as error:
        print(f"error: the Hub refused the publish: {error}", file=sys.stderr)
        return 1
    except _transport_error() as error:
        print(f"error: cannot reach the Hub at {args.endpoint or 'HF_ENDPOINT / huggingface.co'}: {error}. "
              "If it dropped mid-way, run the same command again: unchanged files are skipped and the tag is added.", file=sys.stderr)
        return 1
    return 0
