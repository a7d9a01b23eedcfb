"""The scheme's frequencies inside vLLM's text attention: a drop-in for every layer's ``rotary_emb``.

cos/sin come from the :class:`~mmrope_hf.frequencies.rotary.MultimodalRotaryEmbedding` that the transformers patch
installed on the checkpoint's meta-device model (its frequency plan, channel pairing and relative-storage rule),
fed with vLLM's ``inv_freq``. A pair plan rotates every head alike; a per-KV-head plan (MHRoPE, NoPE heads) goes
through :func:`~mmrope_hf.frequencies.apply.apply_per_head_axis`, as in transformers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mmrope_hf.frequencies.apply import PAIRINGS, apply_per_head_axis
from mmrope_hf.frequencies.rotary import MultimodalRotaryEmbedding


class _Frequencies(nn.Module):
    """What :class:`MultimodalRotaryEmbedding` reads of a stock rotary: ``inv_freq`` and ``attention_scaling``."""

    inv_freq: torch.Tensor

    def __init__(self, inv_freq: torch.Tensor, attention_scaling: float):
        super().__init__()
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.attention_scaling = attention_scaling


class SchemeRotary(nn.Module):
    """vLLM's rotary interface, ``forward(positions, query, key) -> (query, key)``: positions ``(3, N)`` or ``(N,)``
    (a 1D model), q/k ``(N, heads * head_size)`` or ``(N, heads, head_size)``, rotated under the scheme's plan."""

    def __init__(self, stock: Any, rotary: MultimodalRotaryEmbedding):
        super().__init__()
        pairing = "half" if stock.is_neox_style else "adjacent"
        if pairing != rotary.pairing:
            raise ValueError(
                f"vLLM's rotary pairs channels {pairing!r}, the transformers model {rotary.pairing!r}: not the "
                f"layout mmrope-hf was tested with"
            )
        self.head_size: int = stock.head_size
        self.rotary_dim: int = stock.rotary_dim
        scaling = float(stock.mscale) if getattr(stock, "scaling_factor", None) else 1.0
        rotary.stock = _Frequencies(stock._compute_inv_freq(stock.base).float(), scaling)
        self.cos_sin = rotary
        self.rotate = PAIRINGS[pairing].rotate

    def forward(
        self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if offsets is not None:
            raise ValueError("mmrope-hf's rotary takes no position offsets")
        num_tokens = positions.shape[-1]
        cos, sin = self.cos_sin(query, positions.view(-1, 1, num_tokens))  # rows, batch 1, tokens
        q = query.view(num_tokens, -1, self.head_size)
        k = key.view(num_tokens, -1, self.head_size)
        if self.cos_sin.plan.head_axes is not None:  # (N, H, D) <-> (1, H, N, D), apply_per_head_axis's layout
            q, k = apply_per_head_axis(q.transpose(0, 1)[None], k.transpose(0, 1)[None], cos, sin)
            return q[0].transpose(0, 1).reshape(query.shape), k[0].transpose(0, 1).reshape(key.shape)
        c, s = cos[0, :, None], sin[0, :, None]  # (N, 1, rotary_dim): one map for every head
        return self._rotate(q, c, s).reshape(query.shape), self._rotate(k, c, s).reshape(key.shape)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        rotated, passed = x[..., : self.rotary_dim], x[..., self.rotary_dim :]
        return torch.cat((rotated * cos + self.rotate(rotated) * sin, passed), dim=-1)


def install_rotary(language_model: Any, rotary: MultimodalRotaryEmbedding, expected: int) -> None:
    """Give every text attention layer of ``language_model`` the scheme's rotary; raise unless exactly ``expected``
    layers (the decoder layers on this rank) had one."""
    from vllm.model_executor.layers.rotary_embedding.base import RotaryEmbeddingBase

    found: list[Any] = [
        m for m in language_model.modules() if isinstance(getattr(m, "rotary_emb", None), RotaryEmbeddingBase)
    ]
    if len(found) != expected:
        raise RuntimeError(
            f"mmrope-hf found {len(found)} text attention rotaries in {type(language_model).__name__}, expected "
            f"{expected} (one per decoder layer): not the vLLM model layout this plugin was tested with"
        )
    stocks = {id(m.rotary_emb) for m in found}
    if len(stocks) != 1:
        raise RuntimeError(f"the text attention layers hold {len(stocks)} different rotaries; mmrope-hf expects one")
    shared = SchemeRotary(found[0].rotary_emb, rotary)
    for module in found:
        module.rotary_emb = shared
