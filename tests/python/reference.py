"""Independent float64 references for the levattn Python tests, written from the mathematics.

Nothing here calls levattn or follows its algorithms: attention is every <q,k> in float64 with a
max-shifted softmax or |x|^p weights, leverage scores come from an SVD of the (column-equilibrated)
keys, ridge scores from a linear solve, Lewis weights from the plain Cohen–Peng fixed-point
iteration, heavy entries from the whole matrix A.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

# Singular values at most this fraction of the largest count as zero. The rank-deficient inputs of
# the tests have a gap of many orders of magnitude there, so any cut-off between float32 rounding
# (1e-7) and 1e-3 gives the same rank.
RANK_RCOND = 1e-5


def f64(x) -> np.ndarray:
    """x (numpy array or CPU torch tensor, any float dtype incl. bfloat16) as a float64 array."""
    if hasattr(x, "detach"):  # a torch tensor
        return x.detach().double().numpy()
    return np.asarray(x, dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# Attention


def default_scale(f: str, d: int) -> float:
    return 1.0 / math.sqrt(d) if f == "softmax" else 1.0


def power_of(f: str) -> float:
    assert f.startswith("pow:"), f
    return float(f[4:])


def causal_mask(n_q: int, n_k: int) -> np.ndarray:
    """Bottom-right aligned: query i sees key j iff j <= i + n_k - n_q."""
    i = np.arange(n_q)[:, None]
    j = np.arange(n_k)[None, :]
    return j <= i + (n_k - n_q)


def log_weights(q, k, f: str, scale: Optional[float] = None) -> np.ndarray:
    """log f(c<q_i,k_j>) for every pair, float64 (−inf where a power weight is 0)."""
    q, k = f64(q), f64(k)
    c = default_scale(f, q.shape[-1]) if scale is None else scale
    s = c * (q @ k.T)
    if f == "softmax":
        return s
    with np.errstate(divide="ignore"):
        return power_of(f) * np.log(np.abs(s))


def masked_log_weights(q, k, f: str, scale: Optional[float], mask: Optional[np.ndarray], causal: bool):
    """(log f(c<q_i,k_j>) with −inf where mask (joined with the causal mask) forbids, the joined mask)."""
    lw = log_weights(q, k, f, scale)
    if causal:
        cm = causal_mask(q.shape[0], k.shape[0])
        mask = cm if mask is None else (mask & cm)
    if mask is not None:
        lw = np.where(mask, lw, -np.inf)
    return lw, mask


def attention_ref(q, k, v, f: str = "softmax", scale: Optional[float] = None,
                  mask: Optional[np.ndarray] = None, causal: bool = False):
    """One head: (out (n_q, d_v), lse (n_q,), rounding bound (n_q,)) in float64.

    out_i = Σ_j w_ij v_j / Σ_j w_ij over the keys mask[i] allows (all by default; the causal mask
    with causal=True), w_ij = f(c<q_i,k_j>); lse_i = log Σ_j w_ij. A row with Σ w = 0 is 0 with
    lse = −inf. The rounding bound is rounding_bound over the same keys.
    """
    q, k, v = f64(q), f64(k), f64(v)
    lw, mask = masked_log_weights(q, k, f, scale, mask, causal)
    top = lw.max(axis=1, keepdims=True)
    empty = ~np.isfinite(top[:, 0])
    top[empty] = 0.0
    w = np.exp(lw - top)
    total = w.sum(axis=1)
    out = np.zeros((q.shape[0], v.shape[1]))
    ok = total > 0
    out[ok] = (w[ok] @ v) / total[ok, None]
    with np.errstate(divide="ignore"):
        lse = np.where(ok, np.log(np.where(ok, total, 1.0)) + top[:, 0], -np.inf)
    return out, lse, rounding_bound(q, k, f, scale, mask)


def rounding_bound(q, k, f: str = "softmax", scale: Optional[float] = None, mask: Optional[np.ndarray] = None,
                   causal: bool = False) -> np.ndarray:
    """Per query row, a first-order bound on the relative error of the row's normaliser (and of each A_ij's
    share of it) that float32 dot products alone can cause: a product <q,k> of d terms accumulated in float has
    an absolute error up to γ·S with γ = d·2⁻²⁴ and S = Σ_l |q_l k_l| (Higham, Thm 3.1 with fused
    multiply-adds), which moves log f(c<q,k>) by e = c·γ·S (softmax) or p·γ·S/|<q,k>| (|x|^p); the row's log
    normaliser then moves by at most Σ_j A_ij·e_ij. Large only for rows whose weight sits on keys where <q,k>
    cancels (S ≫ |<q,k>|) — there float32 inputs do not determine the result to 1e-5."""
    q, k = f64(q), f64(k)
    d = q.shape[-1]
    c = default_scale(f, d) if scale is None else scale
    gamma = d * 2.0 ** -24
    S = c * (np.abs(q) @ np.abs(k).T)
    if f == "softmax":
        e = gamma * S
    else:
        x = np.abs(c * (q @ k.T))
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(x > 0, power_of(f) * gamma * S / np.where(x > 0, x, 1.0), 0.0)
    lw, _ = masked_log_weights(q, k, f, scale, mask, causal)
    top = lw.max(axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    w = np.exp(lw - top)
    total = w.sum(axis=1)
    total[total == 0] = 1.0
    return (w * e).sum(axis=1) / total


def kv_head(h: int, h_q: int, h_kv: int) -> int:
    """Grouped-query attention: query head h reads key/value head h // (h_q / h_kv)."""
    return h // (h_q // h_kv)


def attention_heads_ref(Q, K, V, f: str = "softmax", scale: Optional[float] = None, causal: bool = False):
    """(B, H_q, n_q, d), (B, H_kv, n_k, d), (B, H_kv, n_k, d_v) -> out (B, H_q, n_q, d_v), lse (B, H_q, n_q) and
    the rounding bound of each row (B, H_q, n_q), see rounding_bound."""
    Q, K, V = f64(Q), f64(K), f64(V)
    B, Hq, nq, _ = Q.shape
    Hkv = K.shape[1]
    out = np.zeros((B, Hq, nq, V.shape[-1]))
    lse = np.zeros((B, Hq, nq))
    rb = np.zeros((B, Hq, nq))
    for b in range(B):
        for h in range(Hq):
            g = kv_head(h, Hq, Hkv)
            out[b, h], lse[b, h], rb[b, h] = attention_ref(Q[b, h], K[b, g], V[b, g], f, scale, causal=causal)
    return out, lse, rb


def attention_error_scale(V) -> float:
    """The scale of an attention output: every row is a convex combination of the rows of V."""
    return float(np.max(np.abs(f64(V)))) or 1.0


def power_lev_ref(q, k, v, kept: Sequence[int], p: float = 2.0, scale: Optional[float] = None,
                  causal: bool = False, window: int = 0):
    """LevAttention with |x|^p given the kept keys of one head: (out, missing_mass, rounding bound), float64.

    Query i sees the kept keys j <= limit_i (limit_i = i + n_k − n_q under the causal mask, else
    n_k − 1) and, with a window, the `window` keys limit_i − window + 1 … limit_i;
    out_i = Σ_{seen} A_ij v_j with A_ij = |c<q_i,k_j>|^p / Σ_{l <= limit_i} |c<q_i,k_l>|^p (the
    full normaliser over every key the query may see), missing_i = 1 − Σ_{seen} A_ij; the rounding bound
    is rounding_bound over the keys of the normaliser.
    """
    seen = seen_mask(q.shape[0], k.shape[0], kept, causal, window)
    lw = log_weights(q, k, f"pow:{p}", scale)
    visible = causal_mask(q.shape[0], k.shape[0]) if causal else np.ones(seen.shape, bool)
    lw = np.where(visible, lw, -np.inf)
    top = lw.max(axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    w = np.exp(lw - top)
    total = w.sum(axis=1, keepdims=True)
    total[total == 0] = 1.0
    A = w / total
    As = np.where(seen, A, 0.0)
    return As @ f64(v), 1.0 - As.sum(axis=1), rounding_bound(q, k, f"pow:{p}", scale, visible)


def seen_mask(n_q: int, n_k: int, kept: Sequence[int], causal: bool = False, window: int = 0) -> np.ndarray:
    """(n_q, n_k) bool: the kept keys each query sees (with the causal mask and window)."""
    m = np.zeros((n_q, n_k), bool)
    m[:, np.asarray(kept, dtype=np.int64)] = True
    if causal:
        m &= causal_mask(n_q, n_k)
        if window > 0:
            limit = np.arange(n_q) + (n_k - n_q)
            j = np.arange(n_k)[None, :]
            m |= (j <= limit[:, None]) & (j > limit[:, None] - window)
    return m


def softmax_lev_ref(q, k, v, kept: Sequence[int], scale: Optional[float] = None, causal: bool = False,
                    window: int = 0) -> np.ndarray:
    """LevAttention with softmax given the kept keys: (out, rounding bound), softmax over the keys each query
    sees."""
    mask = seen_mask(q.shape[0], k.shape[0], kept, causal, window)
    out, _, rb = attention_ref(q, k, v, "softmax", scale, mask=mask)
    return out, rb


# ----------------------------------------------------------------------------------------------
# Key scores


def _equilibrate(K: np.ndarray) -> np.ndarray:
    """Columns scaled to unit norm (zero columns dropped): leverage scores do not change."""
    norms = np.linalg.norm(K, axis=0)
    keep = norms > 0
    return K[:, keep] / norms[keep]


def numerical_rank(K, rcond: float = RANK_RCOND) -> int:
    K = _equilibrate(f64(K))
    if K.shape[1] == 0:
        return 0
    s = np.linalg.svd(K, compute_uv=False)
    return int(np.sum(s > rcond * s[0]))


def leverage_ref(K, rcond: float = RANK_RCOND) -> np.ndarray:
    """τ_j = k_jᵀ(KᵀK)⁺k_j from a thin SVD of the equilibrated keys, singular values ≤ rcond·σ_max cut."""
    K = _equilibrate(f64(K))
    if K.shape[1] == 0:
        return np.zeros(K.shape[0])
    U, s, _ = np.linalg.svd(K, full_matrices=False)
    r = int(np.sum(s > rcond * s[0]))
    return np.sum(U[:, :r] ** 2, axis=1)


def ridge_ref(K, ridge: float) -> np.ndarray:
    """k_jᵀ(KᵀK + λI)⁻¹k_j by a linear solve in float64."""
    K = f64(K)
    M = K.T @ K + ridge * np.eye(K.shape[1])
    X = np.linalg.solve(M, K.T)
    return np.einsum("ij,ji->i", K, X)


def _weighted_leverage(K: np.ndarray, u: np.ndarray, rcond: float) -> np.ndarray:
    """k_jᵀ(Kᵀ diag(u) K)⁺k_j for every row, from the SVD of diag(√u)·K·D⁻¹ with D the column norms
    of diag(√u)·K (an equilibration that leaves these quadratic forms unchanged)."""
    R = np.sqrt(u)[:, None] * K
    norms = np.linalg.norm(R, axis=0)
    keep = norms > 0
    if not np.any(keep):
        return np.zeros(K.shape[0])
    _, s, Vt = np.linalg.svd(R[:, keep] / norms[keep], full_matrices=False)
    r = int(np.sum(s > rcond * s[0]))
    Z = ((K[:, keep] / norms[keep]) @ Vt[:r].T) / s[:r]
    return np.sum(Z ** 2, axis=1)


def lewis_ref(K, p: float, rcond: float = RANK_RCOND, tol: float = 1e-13, max_iter: int = 5000) -> np.ndarray:
    """ℓp Lewis weights (0 < p < 4) by the plain Cohen–Peng iteration in float64:
    w_j ← (k_jᵀ(Kᵀ W^{1−2/p} K)⁺ k_j)^{p/2}, from w = 1, until the relative change is below tol.
    Zero keys get weight 0."""
    assert 0 < p < 4
    K = f64(K)
    zero = ~np.any(K != 0, axis=1)
    w = np.where(zero, 0.0, 1.0)
    for _ in range(max_iter):
        u = np.zeros_like(w)
        u[~zero] = w[~zero] ** (1.0 - 2.0 / p)
        new = _weighted_leverage(K, u, rcond) ** (p / 2.0)
        new[zero] = 0.0
        change = np.max(np.abs(new - w) / np.maximum(np.maximum(new, w), 1e-300))
        w = new
        if change < tol:
            return w
    raise AssertionError(f"reference Lewis iteration did not converge for p = {p}")


def lewis_sensitivity_ref(K, p: float, rcond: float = RANK_RCOND) -> np.ndarray:
    """s_j = w_j (p <= 2) or r^{p/2−1}·w_j (p > 2): the largest |x|^p attention key j can get."""
    w = lewis_ref(K, p, rcond)
    return w * (numerical_rank(K, rcond) ** (p / 2.0 - 1.0) if p > 2 else 1.0)


def top_k_ref(scores: np.ndarray, k: int) -> np.ndarray:
    """The k largest scores, ties to the lower index; indices ascending."""
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores)))
    return np.sort(order[:k])


def top_k_consistent(kept: np.ndarray, scores: np.ndarray, k: int, rtol: float) -> bool:
    """kept is a valid top-k of scores up to ties within rtol: k distinct keys, every kept score at
    least every dropped score (to rtol)."""
    kept = np.asarray(kept)
    if len(kept) != k or len(np.unique(kept)) != k:
        return False
    dropped = np.setdiff1d(np.arange(len(scores)), kept)
    if len(dropped) == 0:
        return True
    return bool(scores[kept].min() >= scores[dropped].max() * (1.0 - rtol))


def threshold_set_agrees(indices: np.ndarray, scores_ref: np.ndarray, eps: float, rtol: float) -> bool:
    """indices == {j : scores_ref[j] >= eps}, except for keys within rtol (relative) of eps."""
    want = set(np.flatnonzero(scores_ref >= eps).tolist())
    got = set(np.asarray(indices).tolist())
    boundary = np.abs(scores_ref - eps) <= rtol * eps
    return all(boundary[j] for j in want ^ got)


# ----------------------------------------------------------------------------------------------
# Heavy entries


def power_attention_matrix(q, k, p: float) -> np.ndarray:
    """A[i,j] = |<q_i,k_j>|^p / Σ_l |<q_i,k_l>|^p in float64 (rows with a zero sum are 0)."""
    lw = log_weights(q, k, f"pow:{p}", 1.0)
    top = lw.max(axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    w = np.exp(lw - top)
    total = w.sum(axis=1, keepdims=True)
    total[total == 0] = 1.0
    return w / total


def heavy_ref(q, k, eps: float, p: float = 2.0):
    """(A, set of (i, j) with A[i,j] >= eps) by brute force."""
    A = power_attention_matrix(q, k, p)
    i, j = np.nonzero(A >= eps)
    return A, set(zip(i.tolist(), j.tolist()))
