"""A small causal transformer for MQAR, whose attention runs on levattn's kernels.

    RecallModel(tokens, width, heads, layers, attention)

The input of position t is its token's embedding plus a learned linear map of token t − 1's (a
causal convolution of width 2, the "shift" of H3 and Zoology's BaseConv), then pre-norm blocks
(causal self-attention with rotary positions, then a 4×width GELU MLP) and an output layer tied to
the embedding. `attention` is how every layer attends while training and at full cache:

    "softmax"        exact causal softmax attention (levattn.torch.attention, method="exact");
    "lev:K", "lev:F" causal LevAttention: per sequence and head the K keys (or the fraction F of the
                     keys) of largest leverage score (one set, masked by position) plus a window of
                     the last `window` keys (levattn.torch.attention, method="lev").

forward_pressed(tokens, context, press) runs the same weights the way a compressed KV cache serves
them: the context (the first `context` tokens) is prefilled as the model attends; then, in
every layer, `press` cuts each head's cache of context keys, and the query tokens attend over the
kept context keys plus the query tokens up to themselves. A press is called once per layer as

    press(layer, q_context, k_context, q_queries) -> kept

with q_context, k_context (B, H, context, head_dim) and q_queries (B, H, n_query, head_dim) float32,
and returns a bool tensor, either (B, H, context) (one kept set per head) or (B, H, n_query, context)
(one per query, the oracle).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

import levattn.torch as lt

Press = Callable[[int, Tensor, Tensor, Tensor], Tensor]


def attention_spec(spec: str) -> dict:
    """The levattn.torch.attention arguments for "softmax", "lev:K" (K ≥ 1 keys) or "lev:F" (a
    fraction 0 < F < 1 of the keys, at least one)."""
    if spec == "softmax":
        return {"method": "exact"}
    if spec.startswith("lev:"):
        try:
            value = float(spec[4:])
        except ValueError:
            value = 0.0
        if value >= 1 and value == int(value) and "." not in spec:
            return {"method": "lev", "top_k": int(value)}
        if 0 < value < 1:
            return {"method": "lev", "fraction": value}
    raise ValueError(f"attention must be 'softmax', 'lev:K' (K ≥ 1) or 'lev:F' (0 < F < 1), got {spec!r}")


def rotary(x: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding of (B, H, n, head_dim) queries or keys: the pair of features
    (2i, 2i + 1) at position t rotated by t·base^(−2i/head_dim)."""
    n, hd = x.shape[2], x.shape[3]
    angle = torch.arange(n, dtype=torch.float32)[:, None] * base ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    cos, sin = angle.cos(), angle.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(3)


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def project(self, x: Tensor):
        """q, k, v of shape (B, H, n, head_dim), q and k with rotary positions."""
        B, n, _ = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(B, n, 3, self.heads, self.head_dim)
        q, k, v = [t.transpose(1, 2) for t in qkv.unbind(2)]
        return rotary(q), rotary(k), v

    def finish(self, x: Tensor, attended: Tensor) -> Tensor:
        """Residual update from the attention output (B, H, n, head_dim), then the MLP."""
        B, _, n, _ = attended.shape
        x = x + self.out(attended.transpose(1, 2).reshape(B, n, -1))
        return x + self.mlp(self.norm2(x))


class RecallModel(nn.Module):
    def __init__(self, tokens: int, width: int = 64, heads: int = 4, layers: int = 2,
                 attention: str = "softmax", window: int = 0, threads: Optional[int] = None):
        super().__init__()
        if width % heads:
            raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
        self.spec, self.window, self.threads = attention_spec(attention), window, threads
        self.warm = False  # True: attend with exact softmax whatever `attention` says (a warm start)
        self.embed = nn.Embedding(tokens, width)
        self.shift = nn.Linear(width, width, bias=False)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, tokens)
        self.head.weight = self.embed.weight  # tied: copying a value's embedding scores that value

    def inputs(self, tokens: Tensor) -> Tensor:
        """(B, n, width): each token's embedding plus the shift map of the previous token's."""
        e = self.embed(tokens)
        return e + self.shift(nn.functional.pad(e, (0, 0, 1, 0))[:, :-1])

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        spec = dict(self.spec) if not self.warm else {"method": "exact"}
        if spec["method"] == "lev":
            n = k.shape[2]
            spec["top_k"] = min(spec["top_k"], n) if "top_k" in spec else max(1, round(spec.pop("fraction") * n))
            spec["window"] = self.window
        return lt.attention(q, k, v, is_causal=True, threads=self.threads, **spec)

    def forward(self, tokens: Tensor, where: Optional[Tensor] = None) -> Tensor:
        """Logits for tokens (B, n), every layer attending as `attention` says: (B, n, tokens), or
        (count, tokens) at the positions where the bool mask `where` (B, n) is set (the output
        layer is most of the cost, and only the answers are scored)."""
        x = self.inputs(tokens)
        for block in self.blocks:
            q, k, v = block.project(x)
            x = block.finish(x, self._attend(q, k, v))
        return self.head(self.norm(x if where is None else x[where]))

    @torch.no_grad()
    def forward_pressed(self, tokens: Tensor, context: int, press: Press) -> Tensor:
        """Logits (B, n − context, tokens) of the query tokens, served from pressed caches (above).
        The context is prefilled as the model attends (`attention`)."""
        x = self.inputs(tokens)
        n = tokens.shape[1]
        m = n - context
        causal = torch.ones(m, m, dtype=torch.bool).tril()
        for layer, block in enumerate(self.blocks):
            q, k, v = block.project(x)
            ctx_out = self._attend(q[:, :, :context], k[:, :, :context], v[:, :, :context])
            kept = press(layer, q[:, :, :context].contiguous(), k[:, :, :context].contiguous(),
                         q[:, :, context:].contiguous())
            if kept.dim() == 3:
                kept = kept[:, :, None, :].expand(-1, -1, m, -1)
            allowed = torch.cat([kept, causal.expand(kept.shape[0], kept.shape[1], m, m)], dim=3)
            logits = q[:, :, context:] @ k.transpose(2, 3) / math.sqrt(q.shape[3])
            weights = logits.masked_fill(~allowed, float("-inf")).softmax(dim=3)
            out = torch.cat([ctx_out, weights @ v], dim=2)
            x = block.finish(x, out)
        return self.head(self.norm(x[:, context:]))
