"""Qwen2.5-VL vision attention with chunks of equal length batched: one attention call per distinct length.

The vision tower attends within chunks given by ``cu_seqlens``: one image in its full-attention blocks, one
window of 112x112 pixels in the others, never across images. transformers' sdpa path runs one attention
call per chunk: for a batch of photos hundreds of small calls per layer, each a few kernel launches.
``grouped`` stacks the chunks of each distinct length (most windows are full-size; edge windows and images
come in a few sizes) and runs one batched call per length: the same attention, far fewer launches.

`install_grouped_attention` swaps the forward of every vision attention module of a loaded model and
`uninstall_grouped_attention` restores it; recipes turn it on with ``model.vision_attention: grouped``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

PER_CHUNK = "per_chunk"  # transformers' own implementation
GROUPED = "grouped"
SUPPORTED_MODEL_TYPES = ("qwen2_5_vl",)
_ATTENTION_CLASS = "Qwen2_5_VLVisionAttention"


def grouped_attention(query, key, value, cu_seqlens, scale: float):
    """Attention within each chunk ``[cu_seqlens[i], cu_seqlens[i + 1])`` of ``(heads, seq, head_dim)`` tensors,
    one ``scaled_dot_product_attention`` call per distinct chunk length; returns ``(heads, seq, head_dim)``."""
    import torch
    import torch.nn.functional as F

    bounds = cu_seqlens.tolist()
    starts_by_length: dict[int, list[int]] = {}
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if end > start:
            starts_by_length.setdefault(end - start, []).append(start)
    heads, _, dim = query.shape
    outputs, positions = [], []
    for length, starts in starts_by_length.items():
        index = (torch.tensor(starts, device=query.device)[:, None]
                 + torch.arange(length, device=query.device)[None, :]).reshape(-1)
        q, k, v = (t.index_select(1, index).reshape(heads, len(starts), length, dim).transpose(0, 1)
                   for t in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)  # (chunks, heads, length, dim)
        outputs.append(out.transpose(0, 1).reshape(heads, -1, dim))
        positions.append(index)
    order = torch.cat(positions)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return torch.cat(outputs, dim=1).index_select(1, inverse)


def _grouped_forward(self, hidden_states, cu_seqlens, position_embeddings=None, **kwargs: Any):
    rotate = sys.modules[type(self).__module__].apply_rotary_pos_emb_vision
    seq_length = hidden_states.shape[0]
    query, key, value = self.qkv(hidden_states).reshape(seq_length, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    query, key = rotate(query, key, cos, sin)
    out = grouped_attention(query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1), cu_seqlens, self.scaling)
    return self.proj(out.transpose(0, 1).reshape(seq_length, -1))


_grouped_forward.is_grouped_vision_attention = True


def _attention_modules(model) -> list:
    return [module for module in model.modules() if type(module).__name__ == _ATTENTION_CLASS]


def install_grouped_attention(model) -> int:
    """Grouped attention in every vision attention module of ``model``; returns how many were swapped."""
    modules = _attention_modules(model)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no {_ATTENTION_CLASS} modules; grouped vision attention "
                         f"supports {', '.join(SUPPORTED_MODEL_TYPES)}")
    for module in modules:
        module.forward = types.MethodType(_grouped_forward, module)
    return len(modules)


def uninstall_grouped_attention(model) -> int:
    """transformers' own vision attention back; returns how many modules were restored."""
    restored = 0
    for module in _attention_modules(model):
        forward = module.__dict__.get("forward")
        if forward is not None and getattr(forward, "is_grouped_vision_attention", False):
            del module.forward
            restored += 1
    return restored
