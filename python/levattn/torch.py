"""levattn for PyTorch: differentiable attention and a drop-in self-attention module.

    levattn.torch.attention(q, k, v, ...)    levattn.attention as an autograd function
    levattn.torch.LevSelfAttention(E, H, top_k=...)   can replace nn.MultiheadAttention as the
                                             self_attn of nn.TransformerEncoderLayer

Importing this module imports torch (Debian's torch 1.13 here). The forward pass runs levattn's
kernels, and so does the backward pass (attend_exact_backward, attend_lev_backward: tiled, no
n_q × n_k matrix). The gradients are those of the function the forward computed, with the key
selection held fixed (no gradient flows through which keys were kept).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ._arrays import as_float32, threads_arg
from ._attention import attention as _attention
from . import _levattn
from ._levattn import InputError

__all__ = ["attention", "LevSelfAttention"]


class _Attention(torch.autograd.Function):
    """Forward by levattn on (B, H, n, d) tensors. Backward by levattn's tiled kernels: exact
    attention from the saved output and log normaliser (attend_exact_backward), LevAttention over
    its kept keys and causal window (attend_lev_backward)."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, options: dict) -> Tensor:  # type: ignore[override]
        ctx.lse = ctx.kept = None
        if options.get("method") == "lev":
            out, kept = _attention(q.detach(), k.detach(), v.detach(), return_kept=True, **options)
            ctx.kept = [np.asarray(h) for per_batch in kept for h in per_batch]
        else:
            out, ctx.lse = _attention(q.detach(), k.detach(), v.detach(), return_lse=True, **options)
        ctx.save_for_backward(q, k, v, out)
        ctx.options = options
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable  # the computation below is not itself differentiated
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        q, k, v, out = ctx.saved_tensors
        o = ctx.options
        causal = bool(o["is_causal"])
        arrays = [as_float32(x.detach(), name) for x, name in ((q, "q"), (k, "k"), (v, "v"), (out, "out"),
                                                               (grad_out, "grad_out"))]
        if ctx.lse is not None:
            grads = _levattn.attend_exact_backward(*arrays[:4], ctx.lse.numpy(), arrays[4], o["f"],
                                                   o["scale"] or 0.0, causal, threads_arg(o["threads"]))
        else:
            grads = _levattn.attend_lev_backward(*arrays, o["f"], o["scale"] or 0.0, causal, int(o["window"]),
                                                 ctx.kept, threads_arg(o["threads"]))
        result = [torch.from_numpy(g).to(x.dtype) if x.requires_grad else None for g, x in zip(grads, (q, k, v))]
        return result[0], result[1], result[2], None


def attention(q: Tensor, k: Tensor, v: Tensor, *, method: str = "exact", is_causal: bool = False,
              scale: Optional[float] = None, f: str = "softmax", top_k: Optional[int] = None,
              eps: Optional[float] = None, sinks: int = 0, window: int = 0, layout: str = "bhnd",
              ridge: float = 0.0, rcond: Optional[float] = None, threads: Optional[int] = None) -> Tensor:
    """levattn.attention on CPU torch tensors, differentiable in q, k and v.

    Arguments and shapes as levattn.attention (which see): (n, d), (h, n, d) or (b, h, n, d)
    ((b, n, h, d) with layout="bnhd"), grouped-query heads, bottom-right causal. method="exact":
    the gradient of exact attention, by levattn's tiled backward kernel (relative error ≤ 1e-4
    against float64). method="lev": the gradient through the kept keys and values
    (and, for pow:2, through the full normaliser over every key), with the selection held fixed.
    LevAttention with pow:P, P ≠ 2 normalises by a sampled estimate and is not differentiable here
    (InputError when an input requires grad). Returns the float32 output; gradients come back in
    each input's dtype.
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise InputError(f"{name}: expected a torch tensor, got {type(x).__name__}")
    options = dict(method=method, is_causal=is_causal, scale=scale, f=f, sinks=sinks, window=window, ridge=ridge,
                   rcond=rcond, threads=threads)
    if method == "lev":
        options.update(top_k=top_k, eps=eps)
    elif top_k is not None or eps is not None:
        raise InputError("top_k and eps apply to method='lev'")
    if not (q.requires_grad or k.requires_grad or v.requires_grad) or not torch.is_grad_enabled():
        return _attention(q.detach(), k.detach(), v.detach(), layout=layout, **options)
    if not isinstance(f, str):
        raise InputError(f"f must be 'softmax' or 'pow:P', got {f!r}")
    kind, p, _ = _levattn.score_function(f, 0.0, 1)
    if method == "lev" and kind == "pow" and p != 2.0:
        raise InputError("LevAttention with pow:P, P ≠ 2 normalises by a sampled estimate: it has no gradient "
                         "here (detach the inputs, or use pow:2 or softmax)")
    if layout not in ("bhnd", "bnhd"):
        raise InputError(f"layout must be 'bhnd' or 'bnhd', got {layout!r}")
    ndim = q.dim()
    if ndim not in (2, 3, 4) or k.dim() != ndim or v.dim() != ndim:
        raise InputError(f"q, k and v must all have 2, 3 or 4 dimensions, got {q.dim()}, {k.dim()} and {v.dim()}")
    if layout == "bnhd" and ndim != 4:
        raise InputError("layout='bnhd' applies to 4-D inputs (b, n, h, d)")
    lead = (None,) * (4 - ndim)

    def heads(x: Tensor) -> Tensor:
        x = x[lead] if lead else x
        return x.transpose(1, 2) if layout == "bnhd" else x

    out = _Attention.apply(heads(q), heads(k), heads(v), options)
    if layout == "bnhd":
        return out.transpose(1, 2)
    return out.reshape(out.shape[4 - ndim:])


class LevSelfAttention(nn.Module):
    """Multi-head self-attention whose heads attend over the keys of largest leverage score.

    A replacement for nn.MultiheadAttention as the `self_attn` of nn.TransformerEncoderLayer: the
    same parameters (in_proj_weight, in_proj_bias, out_proj), so a stock layer's weights load with
    load_state_dict, and the same forward call. Per batch element and head it keeps the top_k keys
    by ℓ2 leverage score (or those with score ≥ eps), plus the first `sinks`, and runs softmax
    (or f) over them; with top_k ≥ n every key is kept and the output is the stock layer's. Without
    top_k and eps it is exact attention. Gradients flow through the kept keys (the selection
    itself has none). Attention weights are never formed: the second output is None, and
    attention dropout is not supported.

    Inputs (batch, n, embed_dim) with batch_first=True, (n, batch, embed_dim) otherwise, or (n,
    embed_dim) unbatched. attn_mask and key_padding_mask are refused unless None (or all False);
    is_causal=True applies the causal mask.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, top_k: Optional[int] = None, eps: Optional[float] = None,
                 sinks: int = 0, batch_first: bool = True, bias: bool = True, dropout: float = 0.0,
                 is_causal: bool = False, f: str = "softmax", threads: Optional[int] = None,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        if embed_dim < 1 or num_heads < 1 or embed_dim % num_heads != 0:
            raise InputError(f"embed_dim ({embed_dim}) must be a positive multiple of num_heads ({num_heads})")
        if dropout != 0.0:
            raise InputError("LevSelfAttention never forms the attention weights: attention dropout is not supported")
        if top_k is not None and eps is not None:
            raise InputError("give at most one of top_k and eps")
        factory = {"device": device, "dtype": dtype}
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.top_k, self.eps, self.sinks, self.is_causal, self.f, self.threads = top_k, eps, sinks, is_causal, f, threads
        self.batch_first = batch_first
        # nn.TransformerEncoderLayer takes a fused fast path (bypassing self_attn.forward) in
        # inference when this is True; False keeps every call going through this module.
        self._qkv_same_embed_dim = False
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **factory))
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = True, attn_mask: Optional[Tensor] = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[Tensor, None]:
        if attn_mask is not None:
            raise InputError("LevSelfAttention: attn_mask is not supported (use is_causal)")
        if key_padding_mask is not None and bool(key_padding_mask.any()):
            raise InputError("LevSelfAttention: padded keys (key_padding_mask) are not supported")
        unbatched = query.dim() == 2
        if query.dim() not in (2, 3) or key.dim() != query.dim() or value.dim() != query.dim():
            raise InputError(f"expected inputs of 2 or 3 dimensions, got {query.dim()}, {key.dim()}, {value.dim()}")
        if unbatched:
            query, key, value = query[None], key[None], value[None]
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        E, H, hd = self.embed_dim, self.num_heads, self.head_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else b.split(E)
        wq, wk, wv = w.split(E)
        q = nn.functional.linear(query, wq, bq)
        k = nn.functional.linear(key, wk, bk)
        v = nn.functional.linear(value, wv, bv)
        B, n_q, n_k = q.shape[0], q.shape[1], k.shape[1]
        q, k, v = q.reshape(B, n_q, H, hd), k.reshape(B, n_k, H, hd), v.reshape(B, n_k, H, hd)
        select = {}
        if self.eps is not None:
            select = {"method": "lev", "eps": self.eps, "sinks": self.sinks}
        elif self.top_k is not None:  # sequences of at most top_k keys keep them all
            select = {"method": "lev", "top_k": min(self.top_k, n_k), "sinks": self.sinks}
        out = attention(q, k, v, layout="bnhd", is_causal=self.is_causal or is_causal, f=self.f,
                        threads=self.threads, **select)
        out = self.out_proj(out.to(query.dtype).reshape(B, n_q, E))
        if unbatched:
            out = out[0]
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, None
