"""levattn.press and levattn.oracle_top_k: KV-cache presses and their query-aware ceiling."""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from . import _levattn
from ._arrays import InputError, as_float32, integer_arg, is_tensor, like, rcond_arg, real_arg, seed_arg, threads_arg

PRESSES = tuple(_levattn.PRESS_NAMES)


class Pressed(NamedTuple):
    kept: Any    # (..., budget) int64: each key head's kept context keys, ascending
    scores: Any  # (..., n) float64: the press's score of every context key (larger is kept first)


def _heads(x: Any, role: str) -> np.ndarray:
    """x as C-contiguous float32 (b, h, n, d)."""
    a = as_float32(x, role)
    if a.ndim not in (2, 3, 4):
        raise InputError(f"{role} must have 2, 3 or 4 dimensions ((n, d), (h, n, d) or (b, h, n, d)), "
                         f"got shape {tuple(a.shape)}")
    return a.reshape((1,) * (4 - a.ndim) + a.shape)


def _leading(x: Any) -> tuple:
    """The dimensions of x before its last two."""
    return tuple(x.shape[:-2])


def press(name: str, k: Any, budget: int, *, q: Any = None, f: str = "softmax", scale: Optional[float] = None,
          window: int = 32, pool: int = 7, sinks: int = 4, seed: int = 1, ridge_fraction: float = 0.1,
          gamma: float = 0.5, failure: float = 0.05, rcond: Optional[float] = None,
          threads: Optional[int] = None) -> Pressed:
    """Cuts each key head's cache of n context keys to `budget` keys, as a KV-cache press does at the
    end of prefill. Returns Pressed(kept, scores).

    k: (n, d), (h_kv, n, d) or (b, h_kv, n, d) context keys. q: the context's own queries, one per
    key position, (n, d) / (h_q, n, d) / (b, h_q, n, d) with h_q a multiple of h_kv (query head i
    reads key head i // (h_q / h_kv)); needed by "snapkv" and "h2o", ignored by the others.

    name, one of PRESSES:
      "leverage"           τ_j = k_jᵀ(KᵀK)⁺k_j          "ridge"   ridge leverage (λ = ridge_fraction·‖K‖²_F/d)
      "lewis"              ℓ1 Lewis weights             "key-norm"  ‖k_j‖²
      "sketched-leverage"  leverage from a sketch of the keys, within a factor 1 + gamma except with
                           probability `failure` per key
      "streaming"          the first `sinks` keys and the latest ones (StreamingLLM)
      "random"             a random order from `seed` and the head
      "snapkv"             attention of the last `window` context queries (causal, softmax or f with
                           `scale`), summed over them and the query heads, averaged over `pool` (odd)
                           neighbouring keys before the window; the window's own keys rank first,
                           the latest highest (a budget below the window keeps its latest keys)
      "h2o"                attention each key receives from every context query (causal), summed
    Ties go to the lower index. kept and scores come back as numpy arrays, or torch tensors when k
    is a tensor, with k's leading dimensions.
    """
    if name not in PRESSES:
        raise InputError(f"unknown press {name!r}; presses: {', '.join(PRESSES)}")
    kk = _heads(k, "k")
    if not _levattn.press_needs_queries(name):
        q = None  # not read
    qq = None if q is None else _heads(q, "q")
    if q is not None and len(_leading(q)) != len(_leading(k)):
        raise InputError(f"q and k must have the same number of dimensions, got shapes {tuple(q.shape)} and "
                         f"{tuple(k.shape)}")
    if not isinstance(f, str):
        raise InputError(f"f must be 'softmax' or 'pow:P', got {f!r}")
    kept, scores = _levattn.press(name, qq, kk, integer_arg(budget, "budget", 1), f,
                                  0.0 if scale is None else real_arg(scale, "scale"),
                                  integer_arg(window, "window", 1), integer_arg(pool, "pool", 1),
                                  integer_arg(sinks, "sinks", 0), seed_arg(seed),
                                  real_arg(ridge_fraction, "ridge_fraction"), real_arg(gamma, "gamma"),
                                  real_arg(failure, "failure"), rcond_arg(rcond), threads_arg(threads))
    lead, torch_out = _leading(k), is_tensor(k)
    return Pressed(like(kept.reshape(lead + kept.shape[-1:]), torch_out),
                   like(scores.reshape(lead + scores.shape[-1:]), torch_out))


def oracle_top_k(q: Any, k: Any, budget: int, *, f: str = "softmax", scale: Optional[float] = None,
                 threads: Optional[int] = None) -> Any:
    """The query-aware ceiling of every press: for each query its own `budget` keys of largest
    f(c·<q, k>) (exact products in double, ties to the lower index), ascending. q (m, d) /
    (h_q, m, d) / (b, h_q, m, d) and k (n, d) / (h_kv, n, d) / (b, h_kv, n, d), h_q a multiple of
    h_kv. Returns (..., m, budget) int64 with q's leading dimensions. No mask: every key is visible
    to every query (the context precedes the queries)."""
    qq, kk = _heads(q, "q"), _heads(k, "k")
    if len(_leading(q)) != len(_leading(k)):
        raise InputError(f"q and k must have the same number of dimensions, got shapes {tuple(q.shape)} and "
                         f"{tuple(k.shape)}")
    if not isinstance(f, str):
        raise InputError(f"f must be 'softmax' or 'pow:P', got {f!r}")
    kept = _levattn.oracle_top_k(qq, kk, integer_arg(budget, "budget", 1), f,
                                 0.0 if scale is None else real_arg(scale, "scale"), threads_arg(threads))
    return like(kept.reshape(_leading(q) + kept.shape[-2:]), is_tensor(q))
