"""Key scores, universal sets and heavy entries: levattn.leverage_scores, lewis_weights,
universal_set and heavy_entries. Keys are (n, d) for one head or (h, n, d) for h heads."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Union

import numpy as np

from . import _levattn
from ._arrays import (InputError, as_matrix, integer_arg, is_tensor, keys_arg, like, rcond_arg, real_arg,
                      seed_arg, threads_arg)
from ._levattn import Error


class UniversalSet(NamedTuple):
    """The kept keys of one head."""
    indices: Any        # int64, ascending
    bound: float        # the guaranteed bound on len(indices) (rank/eps, …) or top_k
    scores: Any         # float64, the score of each kept key
    within_bound: bool  # len(indices) ≤ bound (False would signal a bug)
    info: Dict[str, Any]  # method, rank, and the sketch plan or Lewis iteration facts


class HeavyEntries(NamedTuple):
    """Every entry A[query, key] ≥ eps of one head, sorted by (query, key)."""
    query: Any  # int64
    key: Any    # int64
    score: Any  # float64, A[query, key] (estimated when info["estimated"])
    info: Dict[str, Any]


def _per_head(keys: Any, work: Callable[[np.ndarray, str], Any]) -> Any:
    """work(head, element type) for (n, d) keys, or a list over the heads of (h, n, d) keys; errors
    name the head. 16-bit keys stay 16-bit (keys_arg)."""
    k, kind = keys_arg(keys, "k", (2, 3))
    if k.ndim == 2:
        return work(k, kind)
    if k.shape[0] == 0:
        raise InputError(f"k: no heads, got shape {tuple(k.shape)}")
    results = []
    for h in range(k.shape[0]):
        try:
            results.append(work(k[h], kind))
        except Error as e:
            raise type(e)(f"head {h}: {e}") from None
    return results


def _stacked(results: Any, torch_out: bool, return_info: bool) -> Any:
    """(values, info) of one head, or a list of them per head, as values (n,) or (h, n) — and the
    info dict, or the list of them, when return_info."""
    if isinstance(results, list):
        values, info = np.stack([r[0] for r in results]), [r[1] for r in results]
    else:
        values, info = results
    return (like(values, torch_out), info) if return_info else like(values, torch_out)


def _gamma(approx: Optional[float]) -> float:
    if approx is None:
        return 0.0
    g = real_arg(approx, "approx")
    if not g > 0.0:
        raise InputError(f"approx (γ) must be > 0 (or None for exact scores), got {approx!r}")
    return g


def leverage_scores(k: Any, *, ridge: float = 0.0, p: float = 2.0, approx: Optional[float] = None,
                    failure: float = 0.05, seed: int = 0, rcond: Optional[float] = None,
                    threads: Optional[int] = None, return_info: bool = False) -> Any:
    """Per-key scores, float64, shape (n,) for keys (n, d) or (h, n) for (h, n, d).

    p = 2 (default): the leverage scores τ_j = k_jᵀ(KᵀK)⁺k_j, the largest attention A[i,j] =
    <q,k_j>²/Σ_l <q,k_l>² any query can give key j; Σ_j τ_j = rank(K). ridge > 0 gives
    k_jᵀ(KᵀK + ridge·I)⁻¹k_j. Accuracy against a float64 SVD: relative 1e-4 for cond(K) ≤ 1e3.
    approx = γ > 0: sketched scores, each within [τ_j/(1+γ), (1+γ)τ_j] except with probability ≤
    failure, seeded by seed (exact scores when no sketch is cheaper).
    p ≠ 2: the ℓp Lewis weights (as lewis_weights).
    rcond: relative singular-value cut-off (directions below it count as absent).
    return_info=True returns (scores, info), info a dict (a list of dicts for several heads).
    float16 and bfloat16 keys (numpy float16, torch float16/bfloat16) are read as they are for the
    exact p = 2 scores, which equal bit for bit those of the keys widened to float32.
    """
    options = (real_arg(p, "p"), _gamma(approx), real_arg(failure, "failure"), seed_arg(seed),
               real_arg(ridge, "ridge"), rcond_arg(rcond), threads_arg(threads))
    return _stacked(_per_head(k, lambda head, kind: _levattn.key_scores(head, *options, kind)), is_tensor(k),
                    return_info)


def lewis_weights(k: Any, p: float, *, tolerance: float = 1e-6, stall_tolerance: float = 1e-3,
                  max_iterations: int = 300, rcond: Optional[float] = None, accelerate: bool = True,
                  threads: Optional[int] = None, return_info: bool = False) -> Any:
    """ℓp Lewis weights w (float64, (n,) or (h, n)), any p > 0: the fixed point
    w_j = (k_jᵀ(KᵀW^{1−2/p}K)⁺k_j)^{p/2}, Σ_j w_j = rank(K); leverage scores for p = 2.

    For every query, |<q,k_j>|^p / Σ_l |<q,k_l>|^p ≤ s_j = w_j (p ≤ 2) or r^{p/2−1}·w_j (p > 2),
    so universal_set(k, eps=…, p=p) holds every heavy key of |x|^p attention. The iteration stops
    at a relative fixed-point residual ≤ tolerance, or, on ill-conditioned keys whose rounding
    keeps the residual above it, once the residual stops falling at ≤ stall_tolerance (the best
    iterate; info["limited_by_rounding"] is then True and info["residual"] its accuracy);
    ComputeError if neither happens within max_iterations weighted leverage computations.
    return_info=True returns (weights, info) with iterations, residual, limited_by_rounding, rank,
    method and sensitivity_factor. float16 and bfloat16 keys are read as they are: the weights of the
    keys widened to float32, bit for bit.
    """
    options = (real_arg(p, "p"), real_arg(tolerance, "tolerance"), real_arg(stall_tolerance, "stall_tolerance"),
               integer_arg(max_iterations, "max_iterations", 1), rcond_arg(rcond), bool(accelerate),
               threads_arg(threads))
    return _stacked(_per_head(k, lambda head, kind: _levattn.lewis_weights(head, *options, kind)), is_tensor(k),
                    return_info)


def universal_set(k: Any, *, eps: Optional[float] = None, top_k: Optional[int] = None, p: float = 2.0,
                  approx: Optional[float] = None, failure: float = 0.05, seed: int = 0,
                  rcond: Optional[float] = None, threads: Optional[int] = None) -> Union[UniversalSet, List[UniversalSet]]:
    """The keys any heavy attention entry can use: a UniversalSet for keys (n, d), a list of them
    (one per head) for (h, n, d).

    eps ∈ (0, 1]: U = {j : s_j ≥ eps} with s the leverage scores (p = 2) or ℓp Lewis sensitivities
    (p ≠ 2): every entry A[i,j] ≥ eps of |x|^p attention, for every query, has j ∈ U, and
    |U| ≤ rank/eps (p ≤ 2) or rank^{p/2}/eps (p > 2) — the set's bound. With approx = γ (p = 2),
    sketched scores are kept at ≥ eps/(1+γ): each key with τ_j ≥ eps is kept except with
    probability ≤ failure, and |U| ≤ (1+γ)²·rank/eps.
    top_k: the k keys of largest score (ties to the lower index), no guarantee; bound = k.
    16-bit keys are read as leverage_scores reads them: the set of the keys widened to float32.
    """
    if (eps is None) == (top_k is None):
        raise InputError("universal_set needs exactly one of eps and top_k")
    e = 0.0
    if eps is not None:
        e = real_arg(eps, "eps")
        if not 0.0 < e <= 1.0:
            raise InputError(f"eps must lie in (0, 1], got {eps!r}")
    kk = 0 if top_k is None else integer_arg(top_k, "top_k", 1)
    options = (e, kk, real_arg(p, "p"), _gamma(approx), real_arg(failure, "failure"), seed_arg(seed),
               rcond_arg(rcond), threads_arg(threads))
    torch_out = is_tensor(k)

    def one(head: np.ndarray, kind: str) -> UniversalSet:
        indices, scores, bound, within, info = _levattn.universal_set(head, *options, kind)
        return UniversalSet(like(indices, torch_out), bound, like(scores, torch_out), within, info)

    return _per_head(k, one)


def heavy_entries(q: Any, k: Any, eps: float, *, p: float = 2.0, delta: float = 0.1, seed: int = 0,
                  rcond: Optional[float] = None, threads: Optional[int] = None) -> Union[HeavyEntries, List[HeavyEntries]]:
    """Every entry A[i,j] = |<q_i,k_j>|^p / Σ_l |<q_i,k_l>|^p ≥ eps, without forming A.

    q (m, d) and k (n, d) give HeavyEntries(query, key, score, info) sorted by (query, key);
    (h, m, d) and (h, n, d) give a list of them, one per head. Cost O((n + m)·d² + m·|U|·d) for
    p = 2. p = 2: every entry ≥ eps is reported and none below it (A in double; only entries
    within rounding of eps can fall either way). p ≠ 2: keys are ranked by ℓp Lewis sensitivities
    and the normaliser is exact (p = 4 when affordable) or sampled to within (1 ± delta) with
    probability ≥ 1 − 1e-6 per query (seeded by seed, head h by seed + h; info["estimated"] says which); entries
    clearing eps/(1+delta) are reported, so recall is 1 whenever the normaliser holds. A query with
    Σ_l |<q,k_l>|^p = 0 has no entries (info["zero_queries"]). float16 and bfloat16 keys are read as
    they are (the entries of the keys widened to float32, bit for bit).
    """
    e = real_arg(eps, "eps")
    qa = as_matrix(q, "q", (2, 3))
    pp = real_arg(p, "p")
    ka, kind = keys_arg(k, "k", (2, 3))
    if qa.ndim != ka.ndim or (qa.ndim == 3 and (qa.shape[0] != ka.shape[0] or qa.shape[0] == 0)):
        raise InputError(f"q and k must have the same head layout, got shapes {tuple(qa.shape)} and {tuple(ka.shape)}")
    dd, first_seed = real_arg(delta, "delta"), seed_arg(seed)
    r, nthreads = rcond_arg(rcond), threads_arg(threads)
    torch_out = is_tensor(q)

    def one(qh: np.ndarray, kh: np.ndarray, head_seed: int) -> HeavyEntries:
        qi, ki, score, info = _levattn.heavy_entries(qh, kh, e, pp, dd, head_seed, r, nthreads, kind)
        return HeavyEntries(like(qi, torch_out), like(ki, torch_out), like(score, torch_out), info)

    if qa.ndim == 2:
        return one(qa, ka, first_seed)
    out = []
    for h in range(qa.shape[0]):
        try:
            out.append(one(qa[h], ka[h], (first_seed + h) % 2**64))  # head h samples with seed + h, as the CLI
        except Error as err:
            raise type(err)(f"head {h}: {err}") from None
    return out
