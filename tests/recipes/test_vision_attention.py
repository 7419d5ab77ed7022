"""Grouped vision attention computes exactly transformers' per-image / per-window attention, in fewer calls."""

from __future__ import annotations

import pytest
import torch

from recipes.config import RecipeError, load_recipe
from recipes.train import prepare
from recipes.vision_attention import grouped_attention, install_grouped_attention, uninstall_grouped_attention

from .conftest import TINY_RECIPE


@pytest.fixture(scope="module")
def tower():
    """A tiny Qwen2.5-VL vision tower: one windowed block (112 px windows) and one full-attention block."""
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    config = Qwen2_5_VLConfig(vision_config=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2,
                                                 out_hidden_size=32, fullatt_block_indexes=[1], window_size=112))
    config.vision_config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return Qwen2_5_VisionTransformerPretrainedModel._from_config(config.vision_config).eval()


def _forward_backward(tower, pixels, grid):
    pixels.grad = None
    output = tower(pixels, grid_thw=grid)
    (output.last_hidden_state.square().sum() + output.pooler_output.sum()).backward()
    return output.pooler_output.detach().clone(), pixels.grad.clone()


class _CountingSDPA:
    def __init__(self, monkeypatch):
        self.calls = 0
        original = torch.nn.functional.scaled_dot_product_attention

        def counting(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)


def test_grouped_attention_equals_transformers_per_chunk_attention_forward_and_backward(tower, monkeypatch):
    # two images of different sizes: the windowed block sees 8 windows of 5 lengths, the full block 2 images
    grid = torch.tensor([[1, 20, 12], [1, 10, 6]])
    pixels = torch.randn(int(grid.prod(-1).sum()), 3 * 2 * 14 * 14, requires_grad=True)
    counter = _CountingSDPA(monkeypatch)
    stock_output, stock_grad = _forward_backward(tower, pixels, grid)
    stock_calls, counter.calls = counter.calls, 0
    assert install_grouped_attention(tower) == 2
    try:
        grouped_output, grouped_grad = _forward_backward(tower, pixels, grid)
    finally:
        assert uninstall_grouped_attention(tower) == 2
    torch.testing.assert_close(grouped_output, stock_output, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grouped_grad, stock_grad, rtol=1e-5, atol=1e-6)
    assert (stock_calls, counter.calls) == (8 + 2, 5 + 2)
    restored_output, _ = _forward_backward(tower, pixels, grid)
    torch.testing.assert_close(restored_output, stock_output, rtol=0, atol=0)


def test_chunks_never_attend_across_each_other():
    query = torch.randn(2, 10, 4)
    key, value = torch.randn(2, 10, 4), torch.randn(2, 10, 4)
    cu_seqlens = torch.tensor([0, 3, 6, 10])
    out = grouped_attention(query, key, value, cu_seqlens, scale=0.5)
    for start, end in [(0, 3), (3, 6), (6, 10)]:
        alone = torch.nn.functional.scaled_dot_product_attention(
            query[:, start:end], key[:, start:end], value[:, start:end], scale=0.5)
        torch.testing.assert_close(out[:, start:end], alone)


def test_recipes_name_it_and_only_qwen2_5_vl_takes_it(curated_release):
    assert load_recipe(TINY_RECIPE).model.vision_attention == "per_chunk"  # transformers' own by default
    with pytest.raises(RecipeError, match="model.vision_attention: Input should be 'per_chunk' or 'grouped'"):
        load_recipe(TINY_RECIPE, {"model.vision_attention": "flash"})
    recipe = load_recipe(TINY_RECIPE, {"model.vision_attention": "grouped",
                                       "data.sources": [{"name": "rms", "options": {"release": str(curated_release)}}]})
    with pytest.raises(RecipeError, match="'tiny-llava' is a 'llava' model; grouped vision attention supports "
                                          "qwen2_5_vl"):
        prepare(recipe)
