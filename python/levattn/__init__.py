"""levattn — heavy attention with universal sets (LevAttention), from Python.

numpy arrays in, numpy arrays out; CPU torch tensors in, torch tensors out. Float32 C-contiguous
inputs are read without a copy; other floating dtypes and layouts are converted. The GIL is
released while the library computes, and results never depend on `threads`.

    attention(q, k, v, ...)            exact attention or LevAttention (SDPA-shaped)
    merge_attention(o1, l1, o2, l2)    combine results over disjoint key sets
    leverage_scores(k, ...)            τ_j = k_jᵀ(KᵀK)⁺k_j (ridge, sketched, or ℓp Lewis)
    lewis_weights(k, p)                ℓp Lewis weights
    universal_set(k, eps=... | top_k=...)  the keys any heavy entry can use, and the bound
    heavy_entries(q, k, eps)           every entry A[i,j] ≥ eps, without forming A
    StreamSelector, KVCache            one-pass selection and a decoding cache
    press(name, k, budget, q=...)      a KV-cache press: each head's cache cut to `budget` keys
    oracle_top_k(q, k, budget)         each query's own top keys: the ceiling of every press
    levattn.torch                      autograd attention and LevSelfAttention (needs torch)

Errors: InputError (a ValueError) for bad input, ComputeError (a RuntimeError) when a
computation fails; both derive from levattn.Error.
"""
from ._levattn import ComputeError, Error, InputError, __version__
from ._attention import attention, merge_attention
from ._scores import HeavyEntries, UniversalSet, heavy_entries, leverage_scores, lewis_weights, universal_set
from ._stream import KVCache, StreamHeavy, StreamResult, StreamSelector
from ._press import PRESSES, Pressed, oracle_top_k, press

__all__ = [
    "__version__", "Error", "InputError", "ComputeError",
    "attention", "merge_attention",
    "leverage_scores", "lewis_weights", "universal_set", "heavy_entries", "UniversalSet", "HeavyEntries",
    "StreamSelector", "StreamResult", "StreamHeavy", "KVCache",
    "PRESSES", "Pressed", "press", "oracle_top_k",
]


def __getattr__(name):
    # levattn.torch loads torch, which takes a second: only on first use.
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module 'levattn' has no attribute {name!r}")
