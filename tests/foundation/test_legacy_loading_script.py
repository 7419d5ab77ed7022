"""On datasets < 4, `rms_dataset.py` still works as a loading script.

Needs a second Python with datasets 3.x: `.ci/run` creates one and sets RMS_LEGACY_PYTHON; locally run
`python -m venv /tmp/legacy && /tmp/legacy/bin/pip install "datasets>=3.6,<4" pillow pyyaml`.
"""

import json
import os
import subprocess

import datasets
import pytest

LEGACY_PYTHON = os.environ.get("RMS_LEGACY_PYTHON")

SCRIPT = """
import json, sys, datasets
assert int(datasets.__version__.split(".")[0]) < 4, datasets.__version__
loaded = datasets.load_dataset(sys.argv[1], sys.argv[2], release=sys.argv[3], trust_remote_code=True, cache_dir=sys.argv[4])
print(json.dumps({split: sorted(loaded[split]["id"]) for split in loaded}))
print(type(loaded["train"][0]["image"]).__module__)
"""


@pytest.mark.skipif(not LEGACY_PYTHON, reason="set RMS_LEGACY_PYTHON to a Python with datasets<4 (CI does)")
@pytest.mark.parametrize("config", ["pairs", "unsafe_responses", "preference"])
def test_the_loading_script_reads_the_release_on_datasets_3(small_release, repo_root, tmp_path, config):
    result = subprocess.run(
        [LEGACY_PYTHON, "-c", SCRIPT, str(repo_root / "rms_dataset.py"), config, str(small_release), str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "HF_DATASETS_OFFLINE": "1"}, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ids_line, image_module = result.stdout.strip().splitlines()[-2:]
    expected = {split: sorted(ds["id"]) for split, ds in datasets.load_dataset(str(small_release), config).items()}
    assert json.loads(ids_line) == expected
    assert image_module.startswith("PIL.")
