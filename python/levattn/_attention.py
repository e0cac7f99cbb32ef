"""levattn.attention and levattn.merge_attention."""
from __future__ import annotations

from typing import Any, List, Optional

import numpy as np

from . import _levattn
from ._arrays import (InputError, as_float32, as_float64, integer_arg, is_tensor, like, rcond_arg, real_arg,
                      seed_arg, sixteen_bit, threads_arg)

_LAYOUTS = ("bhnd", "bnhd")


def _as_heads(x: Any, role: str, ndim: int, layout: str) -> np.ndarray:
    """x as a C-contiguous float32 (B, H, n, d) array."""
    return _heads(as_float32(x, role), role, ndim, layout)


def _heads(a: np.ndarray, role: str, ndim: int, layout: str) -> np.ndarray:
    """The C-contiguous array a seen as (B, H, n, d) (one copy for layout 'bnhd')."""
    if a.ndim != ndim:
        raise InputError(f"q, k and v must have the same number of dimensions: q has {ndim}, "
                         f"{role} has shape {tuple(a.shape)}")
    if ndim == 2:
        return a[None, None]
    if ndim == 3:
        return a[None]
    if layout == "bnhd":
        return np.ascontiguousarray(a.transpose(0, 2, 1, 3))
    return a


def _nest_kept(kept: List[np.ndarray], ndim: int, batch: int, heads: int, torch_out: bool) -> Any:
    kept = [like(k, torch_out) for k in kept]
    if ndim == 2:
        return kept[0]
    if ndim == 3:
        return kept
    return [kept[b * heads:(b + 1) * heads] for b in range(batch)]


def attention(q: Any, k: Any, v: Any, *, method: str = "exact", is_causal: bool = False,
              scale: Optional[float] = None, f: str = "softmax", top_k: Optional[int] = None,
              eps: Optional[float] = None, sinks: int = 0, window: int = 0, return_lse: bool = False,
              return_kept: bool = False, return_missing_mass: bool = False, return_info: bool = False,
              layout: str = "bhnd",
              ridge: float = 0.0, rcond: Optional[float] = None, delta: float = 0.1, seed: int = 0,
              arithmetic: str = "f32", threads: Optional[int] = None) -> Any:
    """Attention output O = A·V, exact or LevAttention, without forming A.

    Shapes: q (n_q, d), k (n_k, d), v (n_k, d_v); or (h, n, ·) per head; or (b, h, n, ·) per batch
    and head — (b, n, h, ·) with layout="bnhd" (converted with one copy each way). q, k and v have
    the same number of dimensions. Query heads may be a multiple of key heads (grouped-query
    attention: query head i reads key/value head i // (h_q / h_kv)). The output has q's shape with
    d_v last, float32; numpy in gives numpy out, CPU torch tensors in give tensors out.

    f: "softmax", A[i,j] = exp(c<q_i,k_j>) / Σ_l exp(c<q_i,k_l>) with c = scale or 1/√d; or
    "pow:P", A[i,j] = |c<q_i,k_j>|^P / Σ_l |c<q_i,k_l>|^P with c = scale or 1.
    is_causal: bottom-right aligned, query i sees keys j ≤ i + n_k − n_q.

    method="exact": tiled with an online normaliser; relative error ≤ 1e-5 against float64.
      float16 keys and values (numpy or torch) and bfloat16 ones (torch) are read as they are, with
      q of the same type or float32 (any other mix is converted to float32). arithmetic="bf16"
      (softmax, more than one query) rounds queries, keys, weights and values to bf16 and sums exact
      products in float: within 1e-2 of float64 attention of those bf16 values (README, "Half
      precision"); "f32" (default) widens 16-bit values exactly.
      return_lse=True also returns each row's log normaliser ln Σ_l f(c<q_i,k_l>) (float64, shape
      (n_q,), (h, n_q) or (b, h, n_q) in either layout; −inf for a row with nothing to attend), which
      merge_attention uses to combine results over disjoint key sets.
    method="lev": per (batch, key head) keeps the top_k keys by ℓ2 leverage score, or those with
      score ≥ eps (for pow:P, P ≠ 2: by ℓP Lewis sensitivity), plus the first `sinks` keys and, with
      is_causal, a `window` of each query's latest keys, and attends over them. softmax is
      normalised over the kept keys; pow:2 by the exact full normaliser Σ_l <q,k_l>², so with eps
      (not causal) every entry A ≥ eps of every query is kept; pow:P, P ≠ 2 (not causal) by an
      exact or sampled normaliser within (1 ± delta), sampled with `seed`. ridge and rcond shape
      the leverage scores. return_kept=True also returns the kept key indices (ascending int64
      arrays: one for 2-D input, a list per key head for 3-D, a list per batch of such lists for
      4-D; the window's keys are not listed); return_missing_mass=True (pow:P only) each row's
      missing mass 1 − Σ_kept A, shaped like the log normaliser; return_info=True a dict: kept_per_head,
      select_seconds, attend_seconds, and for pow:P, P ≠ 2, normaliser_estimated (sampled rather
      than exact) with its normaliser_delta and per-row normaliser_failure probability. 16-bit
      keys and values are read as method="exact" reads them (f32 arithmetic: the output of the
      widened values, bit for bit), pow:P with P ≠ 2 included.

    Returns out, or a tuple (out, [lse], [kept], [missing_mass], [info]) with the requested extras
    in that order. threads: cores to use (None: every core; more than the cores are not used);
    results never depend on it. The GIL is released while the core computes.

    Raises InputError (a ValueError) on bad shapes, dtypes or devices, NaN/Inf, tensors that
    require grad (levattn.torch.attention is differentiable), and parameters out of range (eps ∉
    (0, 1], top_k > n_k, ...); ComputeError (a RuntimeError) when a computation fails (e.g. the
    Lewis weights of pow:P do not converge).
    """
    if method not in ("exact", "lev"):
        raise InputError(f"method must be 'exact' or 'lev', got {method!r}")
    if layout not in _LAYOUTS:
        raise InputError(f"layout must be 'bhnd' or 'bnhd', got {layout!r}")
    if not isinstance(f, str):
        raise InputError(f"f must be 'softmax' or 'pow:P', got {f!r}")
    torch_out = is_tensor(q)
    q16 = sixteen_bit(q, "q")
    qa = q16[1] if q16 is not None else as_float32(q, "q")  # (for its shape, and q's float32 values)
    ndim = qa.ndim
    if ndim not in (2, 3, 4):
        raise InputError(f"q must have 2, 3 or 4 dimensions, got shape {tuple(qa.shape)}")
    if layout == "bnhd" and ndim != 4:
        raise InputError("layout='bnhd' applies to 4-D inputs (b, n, h, d)")
    c = 0.0
    if scale is not None:
        c = real_arg(scale, "scale")
        if not c > 0.0:
            raise InputError(f"scale must be > 0 (or None for the default), got {scale!r}")
    nthreads = threads_arg(threads)
    causal = bool(is_causal)
    extras = []
    if method == "exact":
        if (top_k is not None or eps is not None or sinks or window or return_kept or return_missing_mass
                or return_info):
            raise InputError("top_k, eps, sinks, window, return_kept, return_missing_mass and return_info apply "
                             "to method='lev'")
        kk, vv = sixteen_bit(k, "k"), sixteen_bit(v, "v")
        if kk is not None and vv is not None and kk[0] == vv[0]:  # 16-bit keys and values, read as they are
            same = q16 is not None and q16[0] == kk[0]
            Q = _heads(qa, "q", ndim, layout) if same else _as_heads(q, "q", ndim, layout)
            out, lse = _levattn.attend_exact_16(Q, _heads(kk[1], "k", ndim, layout), _heads(vv[1], "v", ndim, layout),
                                                kk[0], f, c, causal, bool(return_lse), arithmetic, nthreads)
        else:
            out, lse = _levattn.attend_exact(_as_heads(q, "q", ndim, layout), _as_heads(k, "k", ndim, layout),
                                             _as_heads(v, "v", ndim, layout), f, c, causal, bool(return_lse),
                                             nthreads, arithmetic)
        if return_lse:
            extras.append(like(lse.reshape(qa.shape[:-1] if layout == "bhnd" else lse.shape), torch_out))
    else:
        k16, v16 = sixteen_bit(k, "k"), sixteen_bit(v, "v")
        if k16 is not None and v16 is not None and k16[0] == v16[0]:
            kv_type = k16[0]  # 16-bit keys and values, read as they are
            same = q16 is not None and q16[0] == kv_type
            Q = _heads(qa, "q", ndim, layout) if same else _as_heads(q, "q", ndim, layout)
            K, V = _heads(k16[1], "k", ndim, layout), _heads(v16[1], "v", ndim, layout)
        else:
            kv_type = "float32"
            Q, K, V = (_as_heads(x, role, ndim, layout) for x, role in ((q, "q"), (k, "k"), (v, "v")))
        if (top_k is None) == (eps is None):
            raise InputError("method='lev' needs exactly one of top_k and eps")
        if return_lse:
            raise InputError("return_lse applies to method='exact'")
        kk = 0 if top_k is None else integer_arg(top_k, "top_k", 1)
        e = 0.0 if eps is None else real_arg(eps, "eps")
        if eps is not None and not 0.0 < e <= 1.0:
            raise InputError(f"eps must lie in (0, 1], got {eps!r}")
        out, kept, missing, info = _levattn.attend_lev(
            Q, K, V, f, c, causal, kk, e, integer_arg(sinks, "sinks", 0), integer_arg(window, "window", 0),
            real_arg(ridge, "ridge"), rcond_arg(rcond), real_arg(delta, "delta"), seed_arg(seed), nthreads, kv_type)
        if return_kept:
            extras.append(_nest_kept(kept, ndim, K.shape[0], K.shape[1], torch_out))
        if return_missing_mass:
            if missing is None:
                raise InputError("return_missing_mass needs f='pow:P' (softmax has no cheap full normaliser)")
            shape = qa.shape[:-1] if layout == "bhnd" else missing.shape
            extras.append(like(missing.reshape(shape), torch_out))
        if return_info:
            extras.append(info)
    if layout == "bnhd":
        out = np.ascontiguousarray(out.transpose(0, 2, 1, 3))
    else:
        out = out.reshape(qa.shape[:-1] + (out.shape[-1],))
    out = like(out, torch_out)
    return (out, *extras) if extras else out


def merge_attention(o1: Any, lse1: Any, o2: Any, lse2: Any, *, layout: str = "bhnd") -> Any:
    """Combines attention over two disjoint key sets into attention over their union.

    o1, o2: outputs of attention(..., return_lse=True) over the two key sets, same shape
    (..., n, d_v) (or (b, n, h, d_v) with layout="bnhd"); lse1, lse2: their log normalisers,
    shape o.shape[:-1] ((b, h, n) with layout="bnhd"). Returns (o, lse) with
    L = log(e^{L1} + e^{L2}) and o = e^{L1−L}·o1 + e^{L2−L}·o2, exact up to rounding, for any f;
    a row with L = −inf on one side takes the other side. o is float32, lse float64. Raises
    InputError on mismatched shapes, NaN/Inf in o1 or o2, or a NaN/+inf log normaliser.
    """
    if layout not in _LAYOUTS:
        raise InputError(f"layout must be 'bhnd' or 'bnhd', got {layout!r}")
    torch_out = is_tensor(o1)
    a, b = as_float32(o1, "o1"), as_float32(o2, "o2")
    la, lb = as_float64(lse1, "lse1"), as_float64(lse2, "lse2")
    if a.shape != b.shape or a.ndim < 1:
        raise InputError(f"o1 and o2 must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if layout == "bnhd":
        if a.ndim != 4:
            raise InputError("layout='bnhd' applies to 4-D outputs (b, n, h, d_v)")
        a = np.ascontiguousarray(a.transpose(0, 2, 1, 3))
        b = np.ascontiguousarray(b.transpose(0, 2, 1, 3))
    rows = a.shape[:-1]
    if la.shape != rows or lb.shape != rows:
        raise InputError(f"lse1 and lse2 must have shape {tuple(rows)}, got {tuple(la.shape)} and {tuple(lb.shape)}")
    count, width = int(np.prod(rows)), a.shape[-1]
    o, lse = _levattn.merge_attention(a.reshape(count, width), la.reshape(count), b.reshape(count, width),
                                      lb.reshape(count))
    o = o.reshape(a.shape)
    if layout == "bnhd":
        o = np.ascontiguousarray(o.transpose(0, 2, 1, 3))
    return like(o, torch_out), like(lse.reshape(rows), torch_out)
