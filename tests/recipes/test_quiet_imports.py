"""No import-time warning for a feature not in use: bitsandbytes' CPU-kernel notice is dropped for the recipes and
the judges' model layer, which import peft and trl (and so bitsandbytes) with 4-bit off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

NOTICE = "Failed to load CPU gemm_4bit_forward"


def _stderr(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300).stderr


def test_importing_the_recipes_and_the_model_layer_prints_no_bitsandbytes_kernel_notice():
    if NOTICE not in _stderr("import peft"):
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes does not try the kernel, so there is no notice to drop")
    assert NOTICE not in _stderr("import recipes, peft")  # any recipes module: recipes/__init__.py quiets it first
    assert NOTICE not in _stderr("import modelcalls.transformers_backend, peft")
