"""Fresh random inputs for the levattn Python tests: a seeded numpy Generator per call, and the
adversarial kinds of keys the C++ suites use too. Every array is float32 (the library's compute
type) unless asked otherwise; references read these exact values in float64."""
from __future__ import annotations

import zlib

import numpy as np

# Kinds of keys. "conditioned" has cond(K) = 1e3 by construction; "ill_columns" has columns scaled
# over 12 orders of magnitude (cond(K) ≈ 1e12, but column scaling leaves leverage scores unchanged).
KEY_KINDS = ("gaussian", "low_rank", "duplicates", "heavy_tail", "huge", "tiny", "ill_columns", "conditioned")
# Kinds safe for softmax logits (huge keys would overflow exp's argument range).
SOFTMAX_KINDS = ("gaussian", "low_rank", "duplicates", "heavy_tail", "tiny")


def rng_for(*labels) -> np.random.Generator:
    """A Generator seeded from the labels (a test's parameters), so each case has its own data."""
    return np.random.default_rng(zlib.crc32(repr(labels).encode()))


def low_rank_dim(d: int) -> int:
    return max(2, d // 4)


def conditioned(rng: np.random.Generator, n: int, d: int, cond: float) -> np.ndarray:
    """U diag(σ) Vᵀ with σ log-spaced from 1 down to 1/cond, U (n×d) and V (d×d) random orthonormal."""
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.logspace(0, -np.log10(cond), d)
    return (U * s) @ V.T * np.sqrt(n)


def make_keys(kind: str, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """(n, d) float32 keys of the given kind."""
    if kind == "gaussian":
        K = rng.standard_normal((n, d))
    elif kind == "low_rank":
        r = low_rank_dim(d)
        K = rng.standard_normal((n, r)) @ rng.standard_normal((r, d))
    elif kind == "duplicates":
        base = rng.standard_normal((max(d + 1, n // 4), d))
        K = base[rng.integers(0, len(base), size=n)]
        K[: len(base)] = base[: n]  # every base row appears at least once (full rank)
    elif kind == "heavy_tail":
        K = rng.standard_t(2, size=(n, d))
    elif kind == "huge":
        K = rng.standard_normal((n, d)) * 1e15
    elif kind == "tiny":
        K = rng.standard_normal((n, d)) * 1e-15
    elif kind == "ill_columns":
        K = rng.standard_normal((n, d)) * np.logspace(-6, 6, d)
    elif kind == "conditioned":
        K = conditioned(rng, n, d, 1e3)
    else:
        raise ValueError(kind)
    return K.astype(np.float32)


def built_rank(kind: str, d: int) -> int:
    return low_rank_dim(d) if kind == "low_rank" else d


def gaussian(rng: np.random.Generator, *shape, scale: float = 1.0, dtype=np.float32) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(dtype)


def qkv(rng: np.random.Generator, q_shape, k_shape, d_v: int, kind: str = "gaussian"):
    """Queries, keys and values (float32): keys of `kind` (each head separately), queries of the same
    magnitude (gaussian rows times the keys' typical scale), gaussian values."""
    k_shape = tuple(k_shape)
    n, d = k_shape[-2], k_shape[-1]
    heads = int(np.prod(k_shape[:-2], dtype=np.int64))
    K = np.stack([make_keys(kind, n, d, rng) for _ in range(heads)]).reshape(k_shape)
    scale = {"huge": 1e15, "tiny": 1e-15}.get(kind, 1.0)
    Q = gaussian(rng, *q_shape, scale=scale)
    V = gaussian(rng, *(k_shape[:-1] + (d_v,)))
    return Q, K, V
