"""A small Hugging Face Hub look-alike for tests: enough of the Hub's HTTP API for the real clients.

It serves the REAL ``huggingface_hub`` client (``HfApi``, ``hf_hub_download``, ``snapshot_download``,
``HfFileSystem``) and ``datasets.load_dataset("ORG/NAME", ..., revision=...)`` when ``HF_ENDPOINT`` points at
it. Everything lives under one directory: content-addressed blobs in ``blobs/`` and one ``repo.json`` per repo
(commits, branches, tags, settings), so a test can also look at what was stored.

Semantics kept from the Hub (and git): a commit is an immutable snapshot ``{path: blob}`` with a parent;
branches and tags point to commits; a revision resolves as branch, then tag, then full commit sha; creating
a repo makes an initial commit holding ``.gitattributes``; commits go to a branch and may carry
``parentCommit`` (409 when the branch moved); tags are never moved (409 when the tag exists). Files are
stored as LFS when the preupload step says so (``.parquet`` and other binary files, or over 10 MB) and as
regular git blobs otherwise, exactly like the two upload flows of ``huggingface_hub``.

Endpoints (``{type}`` is ``models`` / ``datasets`` / ``spaces``; the file URLs have no prefix for models):

    GET  /api/whoami-v2
    POST /api/validate-yaml
    POST /api/repos/create                                  {name, organization, type, visibility|private}
    PUT  /api/{type}/{ns}/{name}/settings                   {gated, visibility|private}
    GET  /api/{type}/{ns}/{name}[/revision/{rev}]           repo info (sha, private, gated, siblings)
    GET  /api/{type}/{ns}/{name}/refs                       branches and tags
    GET  /api/{type}/{ns}/{name}/tree/{rev}[/{path}]        ?recursive=&expand=
    POST /api/{type}/{ns}/{name}/paths-info/{rev}           form: paths=...&expand=...
    POST /api/{type}/{ns}/{name}/preupload/{rev}            upload mode (lfs / regular) per file
    POST /api/{type}/{ns}/{name}/commit/{rev}               ndjson: header, file, lfsFile, deletedFile, deletedFolder
    POST /api/{type}/{ns}/{name}/tag/{rev}                  {tag, message}
    POST /{type}/{ns}/{name}.git/info/lfs/objects/batch     LFS batch API, "basic" transfer
    PUT  /lfs-upload/{sha256}                               target of the batch API's upload action
    HEAD|GET /[{type}/]{ns}/{name}/resolve/{rev}/{path}     X-Repo-Commit, ETag, Content-Length, Range

Auth: write endpoints need ``Authorization: Bearer <token>`` with a token given to :class:`HubServer`
(401 otherwise); private repos are invisible (404 RepoNotFound) without one. Gating is stored and reported;
with ``enforce_gating=True`` file downloads of a gated repo answer like the Hub (401 ``GatedRepo`` without a
token, 403 for a user who has not been given access with ``grant(repo_id, user)``), otherwise it does not
restrict downloads. ``fail_next("tag")`` (or any repo API action) makes the next such call
fail with a 500, to test recovery. ``supports_gating=False`` makes the settings endpoint answer 404 for
``gated``, like a server without that feature. Not served: pull requests, branches API, commit listing,
deletion of repos, xet storage (run clients with ``HF_HUB_DISABLE_XET=1``; they then use LFS).

Use it in-process (``with HubServer(root, tokens={"hf_x": "alice"}) as hub: hub.url``) or from a shell:
``python tests/hub/server.py ROOT --port 8765 --token hf_x:alice --org alice:ORG``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_THRESHOLD = 10 * 1024 * 1024
BINARY_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".png", ".jpg", ".jpeg", ".webp", ".gz", ".zip")
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class HubError(Exception):
    """An HTTP error answered the way the Hub does: status, X-Error-Code header and a JSON `error`."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


# ----------------------------------------------------------------------------------------------------------
# Storage: blobs + one JSON document per repo
# ----------------------------------------------------------------------------------------------------------


@dataclass
class StoredFile:
    sha256: str
    size: int
    lfs: bool

    def git_oid(self, blobs: Path) -> str:
        data = lfs_pointer(self.sha256, self.size) if self.lfs else (blobs / self.sha256).read_bytes()
        return git_blob_sha1(data)


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    created_at: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    owner: str
    private: bool = False
    gated: str | bool = False
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit:
        """Branch, then tag, then full commit sha; raises RevisionNotFound."""
        revision = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
        oid = self.branches.get(revision) or self.tags.get(revision)
        if oid is None and revision in self.commits:
            oid = revision
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[oid]

    def to_json(self) -> dict:
        return {
            "repo_type": self.repo_type, "repo_id": self.repo_id, "owner": self.owner, "private": self.private,
            "gated": self.gated, "branches": self.branches, "tags": self.tags,
            "commits": {
                oid: {
                    "parent": c.parent, "title": c.title, "created_at": c.created_at,
                    "files": {p: vars(f) for p, f in c.files.items()},
                }
                for oid, c in self.commits.items()
            },
        }


class HubStore:
    """All repos and blobs under one directory. One lock: the test server is small and correctness wins."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()

    def put_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blobs / sha
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha

    def has_blob(self, sha256: str) -> bool:
        return (self.blobs / sha256).exists()

    def read_blob(self, sha256: str) -> bytes:
        return (self.blobs / sha256).read_bytes()

    def save(self, repo: Repo) -> None:
        path = self.root / "repos" / repo.repo_type / repo.repo_id / "repo.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(repo.to_json(), indent=1))

    def get(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def create(self, repo_type: str, repo_id: str, owner: str, private: bool) -> Repo:
        if (repo_type, repo_id) in self.repos:
            raise HubError(409, "You already created this repo")
        repo = Repo(repo_type=repo_type, repo_id=repo_id, owner=owner, private=private)
        self.commit(repo, "main", "initial commit", {".gitattributes": StoredFile(self.put_blob(GITATTRIBUTES),
                                                                                    len(GITATTRIBUTES), False)})
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def commit(self, repo: Repo, branch: str, title: str, files: dict[str, StoredFile]) -> Commit:
        parent = repo.branches.get(branch)
        created_at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        manifest = json.dumps([parent, title, created_at, sorted((p, f.sha256) for p, f in files.items())])
        oid = hashlib.sha1(manifest.encode()).hexdigest()
        commit = Commit(oid=oid, parent=parent, title=title, created_at=created_at, files=dict(files))
        repo.commits[oid] = commit
        repo.branches[branch] = oid
        self.save(repo)
        return commit


# ----------------------------------------------------------------------------------------------------------
# HTTP
# ----------------------------------------------------------------------------------------------------------

API_REPO = re.compile(r"^/api/(?P<type>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?$")
LFS_BATCH = re.compile(r"^/(?:(?P<type>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+)\.git/info/lfs/objects/batch$")
RESOLVE = re.compile(r"^/(?:(?P<type>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    # --- plumbing -------------------------------------------------------------------------------------
    def setup(self):
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self):
        self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format, *args):  # noqa: A002 - quiet by default; the server keeps its own log
        self.server.hub.requests.append(f"{self.command} {self.path}")

    def _body(self) -> bytes:
        return self._request_body

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> dict:
        try:
            return json.loads(self._body() or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(400, f"Body is not JSON: {error}")

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, head=False):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_json(self, payload, status: int = 200, headers: dict[str, str] | None = None):
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        user = self.server.hub.tokens.get(auth.removeprefix("Bearer ").strip())
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _writer(self) -> str:
        user = self._user()
        if user is None:
            raise HubError(401, "You must be authenticated to do this")
        return user

    def _dispatch(self, method: str):
        try:
            # read the whole body first: an error answered before reading it would break the keep-alive stream
            self._request_body = self._read_body()
            with self.server.hub.store.lock:
                self._route(method)
        except HubError as error:
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            body = b"" if method == "HEAD" else json.dumps({"error": error.message}).encode()
            self._send(error.status, body, {"Content-Type": "application/json", **headers})
        except Exception as error:  # a bug in the server: say so loudly instead of hanging the client
            self._send_json({"error": f"test hub server error: {error!r}"}, 500)
            raise

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    # --- routing --------------------------------------------------------------------------------------
    def _route(self, method: str):
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        if path == "/api/whoami-v2" and method == "GET":
            return self._whoami()
        if path == "/api/validate-yaml" and method == "POST":  # the card's YAML is the release validator's job
            return self._send_json({"errors": [], "warnings": []})
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo()
        if path.startswith("/lfs-upload/") and method == "PUT":
            return self._lfs_upload(path.removeprefix("/lfs-upload/"))
        if match := LFS_BATCH.match(path):
            repo = self._repo(REPO_TYPES[match["type"] or "models"], match)
            return self._lfs_batch(repo)
        if match := RESOLVE.match(path):
            repo = self._repo(REPO_TYPES[match["type"] or "models"], match)
            return self._resolve(repo, unquote(match["rev"]), unquote(match["path"]), head=method == "HEAD")
        if match := API_REPO.match(path):
            repo = self._repo(REPO_TYPES[match["type"]], match)
            return self._repo_api(method, repo, match["rest"] or "", query)
        raise HubError(404, f"test hub server: no route for {method} {url.path}")

    def _repo_api(self, method: str, repo: Repo, rest: str, query: dict):
        parts = rest.split("/", 2)  # "", action, remainder
        action = parts[1] if len(parts) > 1 else ""
        remainder = parts[2] if len(parts) > 2 else ""
        if action in self.server.hub.failures:
            self.server.hub.failures.discard(action)
            raise HubError(500, f"injected failure of '{action}' (HubServer.fail_next)")
        if method == "GET" and action == "":
            return self._repo_info(repo, "main")
        if method == "GET" and action == "revision":
            return self._repo_info(repo, unquote(remainder))
        if method == "GET" and action == "refs":
            return self._refs(repo)
        if method == "PUT" and action == "settings":
            return self._settings(repo)
        revision, _, sub_path = remainder.partition("/")
        revision = unquote(revision)
        if method == "GET" and action == "tree":
            flag = lambda name: query.get(name, ["false"])[0].lower() in ("1", "true")  # noqa: E731
            return self._tree(repo, revision, unquote(sub_path), flag("recursive"))
        if method == "POST" and action == "paths-info":
            return self._paths_info(repo, revision)
        if method == "POST" and action == "preupload":
            return self._preupload(repo, revision)
        if method == "POST" and action == "commit":
            return self._commit(repo, revision)
        if method == "POST" and action == "tag":
            return self._tag(repo, revision)
        raise HubError(404, f"test hub server: no route for {method} {self.path}")

    # --- endpoints ------------------------------------------------------------------------------------
    def _whoami(self):
        user = self._writer()
        self._send_json({
            "type": "user", "name": user, "fullname": user,
            "orgs": [{"name": org, "type": "org"} for org in self.server.hub.orgs.get(user, [])],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
        })

    def _create_repo(self):
        user = self._writer()
        payload = self._json_body()
        namespace = payload.get("organization") or user
        if namespace != user and namespace not in self.server.hub.orgs.get(user, []):
            raise HubError(403, f"You don't have the rights to create a repo under '{namespace}'")
        repo_type = payload.get("type") or "model"
        private = payload.get("visibility", "public") != "public" or bool(payload.get("private"))
        repo = self.server.hub.store.create(repo_type, f"{namespace}/{payload['name']}", owner=user,
                                            private=private)
        self._send_json({"url": f"{self.server.hub.url}/{URL_PREFIX[repo_type]}{repo.repo_id}", "name": repo.repo_id})

    def _settings(self, repo: Repo):
        self._require_write_access(repo)
        payload = self._json_body()
        if "gated" in payload:
            if not self.server.hub.supports_gating:
                raise HubError(404, "Gating is not supported by this server")
            if payload["gated"] not in ("auto", "manual", False):
                raise HubError(400, f"Invalid gated value {payload['gated']!r}")
            repo.gated = payload["gated"]
        if "visibility" in payload:
            repo.private = payload["visibility"] != "public"
        if "private" in payload:
            repo.private = bool(payload["private"])
        self.server.hub.store.save(repo)
        self._send_json({})

    def _is_member(self, user: str | None, repo: Repo) -> bool:
        namespace = repo.repo_id.split("/")[0]
        return user is not None and (user == repo.owner or namespace in self.server.hub.orgs.get(user, []))

    def _repo(self, repo_type: str, match: re.Match) -> Repo:
        """The repo named in the URL; a private one is invisible (404) to non-members, like on the Hub."""
        repo = self.server.hub.store.get(repo_type, f"{match['ns']}/{match['name']}")
        if repo.private and not self._is_member(self._user(), repo):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _require_write_access(self, repo: Repo) -> None:
        if not self._is_member(self._writer(), repo):
            raise HubError(403, f"You don't have write access to {repo.repo_id}")

    def _file_entry(self, path: str, stored: StoredFile) -> dict:
        entry = {"type": "file", "path": path, "size": stored.size, "oid": stored.git_oid(self.server.hub.store.blobs)}
        if stored.lfs:
            entry["lfs"] = {"oid": stored.sha256, "size": stored.size,
                            "pointerSize": len(lfs_pointer(stored.sha256, stored.size))}
        return entry

    def _folder_entry(self, path: str, commit: Commit) -> dict:
        return {"type": "directory", "path": path, "oid": hashlib.sha1(f"{commit.oid}:{path}".encode()).hexdigest()}

    def _repo_info(self, repo: Repo, revision: str):
        commit = repo.resolve(revision)
        siblings = []
        for path, stored in sorted(commit.files.items()):
            sibling = {"rfilename": path, "size": stored.size, "blobId": stored.git_oid(self.server.hub.store.blobs)}
            if stored.lfs:
                sibling["lfs"] = {"size": stored.size, "sha256": stored.sha256,
                                  "pointerSize": len(lfs_pointer(stored.sha256, stored.size))}
            siblings.append(sibling)
        self._send_json({
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0], "sha": commit.oid, "lastModified": commit.created_at,
            "createdAt": repo.commits[min(repo.commits, key=lambda o: repo.commits[o].created_at)].created_at,
            "private": repo.private, "gated": repo.gated, "disabled": False, "downloads": 0, "likes": 0,
            "tags": [], "cardData": {}, "siblings": siblings,
        })

    def _refs(self, repo: Repo):
        def ref(kind: str, name: str, oid: str) -> dict:
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}

        self._send_json({
            "branches": [ref("heads", n, o) for n, o in sorted(repo.branches.items())],
            "tags": [ref("tags", n, o) for n, o in sorted(repo.tags.items())],
            "converts": [], "pullRequests": [],
        })

    def _tree(self, repo: Repo, revision: str, folder: str, recursive: bool):
        commit = repo.resolve(revision)
        folder = folder.strip("/")
        prefix = f"{folder}/" if folder else ""
        if folder and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound")
        entries, seen_dirs = [], set()
        for path, stored in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts)):  # the folders between `folder` and the file
                if depth > 1 and not recursive:
                    break
                directory = prefix + "/".join(parts[:depth])
                if directory not in seen_dirs:
                    seen_dirs.add(directory)
                    entries.append(self._folder_entry(directory, commit))
            if recursive or len(parts) == 1:
                entries.append(self._file_entry(path, stored))
        self._send_json(entries)

    def _paths_info(self, repo: Repo, revision: str):
        commit = repo.resolve(revision)
        body = self._body().decode()
        content_type = self.headers.get("Content-Type", "")
        paths = json.loads(body).get("paths", []) if "json" in content_type else parse_qs(body).get("paths", [])
        entries = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                entries.append(self._file_entry(path, commit.files[path]))
            elif any(p.startswith(f"{path}/") for p in commit.files):
                entries.append(self._folder_entry(path, commit))
        self._send_json(entries)

    def _preupload(self, repo: Repo, revision: str):
        self._require_write_access(repo)
        commit = repo.resolve(revision) if revision in repo.branches else None
        files = []
        for item in self._json_body().get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = item["path"].lower().endswith(BINARY_SUFFIXES) or item["size"] > LFS_THRESHOLD or b"\0" in sample
            existing = commit.files.get(item["path"]) if commit else None
            oid = None
            if existing is not None:
                oid = existing.sha256 if lfs else git_blob_sha1(self.server.hub.store.read_blob(existing.sha256))
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": oid})
        self._send_json({"files": files, "commitOid": commit.oid if commit else None})

    def _lfs_batch(self, repo: Repo):
        self._require_write_access(repo)
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "Only the upload operation is served")
        objects = []
        for obj in payload.get("objects", []):
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not self.server.hub.store.has_blob(obj["oid"]):
                answer["actions"] = {"upload": {"href": f"{self.server.hub.url}/lfs-upload/{obj['oid']}",
                                                "expires_in": 3600}}
            objects.append(answer)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_upload(self, oid: str):
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match sha256 {oid}")
        self.server.hub.store.put_blob(data)
        self._send(200)

    def _commit(self, repo: Repo, branch: str):
        self._require_write_access(repo)
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch} (commits go to an existing branch)", "RevisionNotFound")
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), None)
        if header is None or not header.get("summary"):
            raise HubError(400, "The commit has no header with a summary")
        if header.get("parentCommit") and header["parentCommit"] != repo.branches[branch]:
            raise HubError(409, f"A commit has happened since {header['parentCommit']}: the parent is not the head")
        store = self.server.hub.store
        files = dict(repo.resolve(branch).files)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                data = base64.b64decode(value["content"])
                files[value["path"]] = StoredFile(store.put_blob(data), len(data), lfs=False)
            elif key == "lfsFile":
                if not store.has_blob(value["oid"]):
                    raise HubError(400, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                size = len(store.read_blob(value["oid"]))
                files[value["path"]] = StoredFile(value["oid"], size, lfs=True)
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(folder)]:
                    del files[path]
            elif key != "header":
                raise HubError(400, f"Unknown commit operation {key!r}")
        commit = store.commit(repo, branch, header["summary"], files)
        self._send_json({
            "success": True, "commitOid": commit.oid, "pullRequestUrl": None,
            "commitUrl": f"{self.server.hub.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{commit.oid}",
        })

    def _tag(self, repo: Repo, revision: str):
        self._require_write_access(repo)
        payload = self._json_body()
        tag = payload.get("tag", "")
        if not tag or tag in repo.tags:
            raise HubError(409, f"Tag {tag!r} already exists" if tag else "No tag name given")
        repo.tags[tag] = repo.resolve(revision).oid
        self.server.hub.store.save(repo)
        self._send_json({})

    def _resolve(self, repo: Repo, revision: str, path: str, head: bool):
        hub = self.server.hub
        if repo.gated and hub.enforce_gating:
            user = self._user()
            if user is None:
                raise HubError(401, f"Access to dataset {repo.repo_id} is restricted. You must have access to it "
                                    "and be authenticated to access it. Please log in.", "GatedRepo")
            if not self._is_member(user, repo) and user not in hub.granted.get(repo.repo_id, set()):
                raise HubError(403, f"Access to dataset {repo.repo_id} is restricted and you are not in the "
                                    "authorized list.", "GatedRepo")
        commit = repo.resolve(revision)
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        data = self.server.hub.store.read_blob(stored.sha256)
        etag = stored.sha256 if stored.lfs else git_blob_sha1(data)
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{etag}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if stored.lfs:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(stored.size)})
        status = 200
        if match := re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "")):
            start = int(match[1]) if match[1] else max(0, len(data) - int(match[2]))
            end = int(match[2]) if match[1] and match[2] else len(data) - 1
            if start >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                return self._send(416, b"", headers, head=head)
            end = min(end, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        headers["Content-Length"] = str(len(data))
        self._send(status, data, headers, head=head)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: "HubServer"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()  # open keep-alive connections, closed on stop()

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):  # clients hanging up is fine
            super().handle_error(request, client_address)


class HubServer:
    """The server on 127.0.0.1 (free port by default), run in a background thread; a context manager."""

    def __init__(self, root: Path | str, *, tokens: dict[str, str] | None = None,
                 orgs: dict[str, list[str]] | None = None, port: int = 0, supports_gating: bool = True,
                 enforce_gating: bool = False):
        self.store = HubStore(Path(root))
        self.enforce_gating = enforce_gating
        self.granted: dict[str, set[str]] = {}
        self.tokens = dict(tokens or {})
        self.orgs = {user: list(names) for user, names in (orgs or {}).items()}
        self.supports_gating = supports_gating
        self.requests: list[str] = []
        self.failures: set[str] = set()
        self._http = _Server(("127.0.0.1", port), HubRequestHandler)
        self._http.hub = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "HubServer":
        self._thread = threading.Thread(target=self._http.serve_forever, name="test-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        for connection in list(self._http.connections):  # a later server on the same port must not see them
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def grant(self, repo_id: str, user: str) -> None:
        """Give ``user`` access to the gated repo ``repo_id`` (as accepting its terms does on the Hub)."""
        self.granted.setdefault(repo_id, set()).add(user)

    def fail_next(self, action: str) -> None:
        """Answer the next repo API call `action` ("commit", "tag", "preupload", ...) with a 500, once."""
        self.failures.add(action)

    def snapshot(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict[str, bytes]:
        """The files of `repo_id` at `revision` as {path: bytes}: what a test compares against."""
        with self.store.lock:
            repo = self.store.repos[(repo_type, repo_id)]
            commit = repo.resolve(revision)
            return {path: self.store.read_blob(f.sha256) for path, f in commit.files.items()}

    def refs(self, repo_id: str, repo_type: str = "dataset") -> dict[str, dict[str, str]]:
        with self.store.lock:
            repo = self.store.repos[(repo_type, repo_id)]
            return {"branches": dict(repo.branches), "tags": dict(repo.tags)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a Hub look-alike for local tests (see module docstring).")
    parser.add_argument("root", help="Directory holding the blobs and repos.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN:USER",
                        help="A token accepted for writes, and the user it belongs to (repeatable).")
    parser.add_argument("--org", action="append", default=[], metavar="USER:ORG",
                        help="Make USER a member of organisation ORG, allowed to create repos there (repeatable).")
    args = parser.parse_args(argv)
    tokens = dict(item.split(":", 1) for item in args.token)
    orgs: dict[str, list[str]] = {}
    for item in args.org:
        user, org = item.split(":", 1)
        orgs.setdefault(user, []).append(org)
    with HubServer(args.root, tokens=tokens, orgs=orgs, port=args.port) as hub:
        print(f"test hub serving {args.root} at {hub.url}; Ctrl-C to stop", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
