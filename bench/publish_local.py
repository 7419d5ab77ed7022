"""Publishing cost against the local Hub look-alike: first publish, no-change re-run, and a new version.

Publishes a release (default: the committed sample_release/) to tests/hub/server.py on 127.0.0.1 with the
real huggingface_hub client and prints one table row per step: wall seconds, bytes uploaded through the LFS
flow, commits made. It shows that unchanged files are never uploaded again (a re-run after a failed tag
costs only the checks) and what the validate + diff overhead is. The local server is not the Hub: network
time to huggingface.co is not measured.

    python bench/publish_local.py [RELEASE]
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from generation.release.publish import publish  # noqa: E402
from tests.hub.server import HubServer  # noqa: E402

TOKEN = "hf_bench_local"


def uploaded_bytes(hub: HubServer, since: int) -> int:
    digests = [r.split("/lfs-upload/")[1] for r in hub.requests[since:] if r.startswith("PUT /lfs-upload/")]
    return sum((hub.store.blobs / d).stat().st_size for d in digests)


def step(hub: HubServer, name: str, release: Path, repo: str, version: str) -> dict:
    since = len(hub.requests)
    commits_before = len(hub.store.repos[("dataset", repo)].commits) if ("dataset", repo) in hub.store.repos else 1
    start = time.perf_counter()
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        publish(release, repo, version, gated="auto", endpoint=hub.url)
    seconds = time.perf_counter() - start
    commits = len(hub.store.repos[("dataset", repo)].commits) - commits_before
    return {"step": name, "seconds": seconds, "uploaded_MB": uploaded_bytes(hub, since) / 2**20, "commits": commits,
            "requests": len(hub.requests) - since}


def main() -> int:
    release = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "sample_release")
    info = json.loads((release / "release.json").read_text())
    repo, version = info["repo_id"], info["version"]
    size = sum(p.stat().st_size for p in release.rglob("*") if p.is_file()) / 2**20
    os.environ["HF_TOKEN"] = TOKEN
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with HubServer(tmp / "hub", tokens={TOKEN: "bench"}, orgs={"bench": [repo.split("/")[0]]}) as hub:
            rows = [step(hub, "first publish", release, repo, version)]
            tag = f"v{version}"
            repo_state = hub.store.repos[("dataset", repo)]
            del repo_state.tags[tag]  # as if tagging had failed: the re-run must only add the tag
            rows.append(step(hub, "re-run after failed tag", release, repo, version))
            # A new version whose test split lost one pair: the 4 test shards, README.md, LICENSE.md, release.json
            # and checksums.sha256 change; the 4 train shards do not and are not uploaded again.
            import pyarrow.parquet as pq

            import rms_dataset as rms
            from generation.release.write import write_release

            major, minor, patch = (int(x) for x in version.split("."))
            new_version = f"{major}.{minor + 1}.0"
            changed = tmp / "changed"
            source = {config: {split: [row for path in paths for row in pq.read_table(path).to_pylist()]
                               for split, paths in rms.find_shards(str(release), config).items()}
                      for config in rms.SOURCE_CONFIGS}
            dropped = source[rms.PAIRS]["test"][-1]["id"]
            kept = {config: {split: [row for row in split_rows if dropped not in (row["id"], row.get("pair_id"))]
                             for split, split_rows in by_split.items()} for config, by_split in source.items()}
            with redirect_stderr(io.StringIO()):
                write_release(changed, kept, pretty_name=info["pretty_name"], version=new_version, repo_id=repo)
            rows.append(step(hub, f"v{new_version}: one test pair removed", changed, repo, new_version))
    print(f"release: {release} ({size:.1f} MB), local server on 127.0.0.1, python {sys.version.split()[0]}")
    print("| step | seconds | uploaded MB | commits | HTTP requests |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['step']} | {row['seconds']:.2f} | {row['uploaded_MB']:.2f} | {row['commits']} | "
              f"{row['requests']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
