"""levattn.StreamSelector and levattn.KVCache: the stateful objects, mirroring the C++ classes."""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from . import _levattn
from ._arrays import (InputError, as_matrix, integer_arg, is_tensor, like, rcond_arg, real_arg, sixteen_bit,
                      threads_arg)


class StreamResult(NamedTuple):
    """The kept keys over every key pushed so far, in ascending global index."""
    indices: Any        # int64 global indices
    scores: Any         # float64, each kept key's final leverage score τ
    bound: float        # rank/eps (threshold mode) or the budget
    within_bound: bool
    rank: int           # numerical rank of every key pushed
    count: int          # keys pushed
    keys: Any           # float32 (len(indices), d)
    values: Any         # float32 (len(indices), value_dim), or None without values


class StreamHeavy(NamedTuple):
    """Heavy entries A = <q,k>²/qᵀGq ≥ eps against every key pushed so far."""
    query: Any          # int64 row of the queries
    key: Any            # int64 global key index
    score: Any          # float64 A
    uncertain: Any      # int64 queries for which evicted keys are not ruled out
    zero_queries: int   # queries with qᵀGq = 0 (no entries)


class StreamSelector:
    """The universal set U = {j : τ_j ≥ eps} in one pass over keys arriving in blocks, in memory
    that does not grow with the number of keys: O(d² log n + (d + value_dim)·d/eps).

    Threshold mode (eps): result() equals the offline set over all keys pushed — universal_set(K,
    eps=eps) — bit for bit, indices and scores. Budget mode (budget): keeps the `budget` keys of
    highest current score; no guarantee. Selectors over consecutive parts of a stream merge
    exactly (the second built with first_row = the first's next_index). Keys are (rows, d),
    values (rows, value_dim) when value_dim > 0. threads: cores each call uses (None: every core);
    results never depend on it. Safe to share between Python threads (calls are serialised).
    """

    def __init__(self, d: int, *, eps: Optional[float] = None, budget: Optional[int] = None,
                 rcond: Optional[float] = None, first_row: int = 0, value_dim: int = 0, pending_rows: int = 0,
                 threads: Optional[int] = None):
        if (eps is None) == (budget is None):
            raise InputError("StreamSelector needs exactly one of eps and budget")
        e = 0.0 if eps is None else real_arg(eps, "eps")
        if eps is not None and not 0.0 < e <= 1.0:
            raise InputError(f"eps must lie in (0, 1], got {eps!r}")
        self._torch = False
        self._core = _levattn.StreamSelector(
            integer_arg(d, "d", 1), e, 0 if budget is None else integer_arg(budget, "budget", 1), rcond_arg(rcond),
            integer_arg(first_row, "first_row", 0), integer_arg(value_dim, "value_dim", 0),
            integer_arg(pending_rows, "pending_rows", 0), threads_arg(threads))

    def push(self, keys: Any, values: Any = None) -> None:
        """Appends a block of keys (rows, d) (and their values); they get the next global indices.
        On a bad block (shape, NaN/Inf in keys or values) raises InputError naming the global row and
        leaves the selector unchanged. float16 or bfloat16 keys (with values of the same type, or
        none) are read as they are: the selector then holds what the keys widened to float32 give."""
        k16 = sixteen_bit(keys, "keys")
        v16 = None if values is None else sixteen_bit(values, "values")
        if k16 is not None and (values is None or (v16 is not None and v16[0] == k16[0])):
            self._core.push(k16[1], None if v16 is None else v16[1], k16[0])  # read as they are
        else:
            v = None if values is None else as_matrix(values, "values")
            self._core.push(as_matrix(keys, "keys"), v)
        self._torch = self._torch or is_tensor(keys)

    def merge(self, other: "StreamSelector") -> None:
        """Takes in the keys of another selector with the same d, mode and value_dim (exact when
        other.first_row == self.next_index)."""
        if not isinstance(other, StreamSelector):
            raise InputError(f"merge expects a StreamSelector, got {type(other).__name__}")
        self._core.merge(other._core)

    def result(self) -> StreamResult:
        """The set over every key pushed so far (pushing may go on)."""
        indices, scores, bound, within, rank, count, keys, values = self._core.result()
        t = self._torch
        return StreamResult(like(indices, t), like(scores, t), bound, within, rank, count, like(keys, t),
                            like(values, t))

    def heavy(self, queries: Any, eps: float) -> StreamHeavy:
        """Every retained key with A = <q,k>²/qᵀGq ≥ eps (eps ≥ the selector's eps) for each query
        row, with the exact normaliser over all keys pushed; complete except for the queries listed
        as uncertain."""
        query, key, score, uncertain, zero = self._core.heavy(as_matrix(queries, "queries"), real_arg(eps, "eps"))
        t = is_tensor(queries)
        return StreamHeavy(like(query, t), like(key, t), like(score, t), like(uncertain, t), zero)

    dim = property(lambda self: self._core.dim, doc="Key width d.")
    count = property(lambda self: self._core.count, doc="Keys pushed.")
    next_index = property(lambda self: self._core.next_index, doc="Global index of the next key.")
    retained = property(lambda self: self._core.retained, doc="Keys held now.")
    peak_retained = property(lambda self: self._core.peak_retained, doc="Most keys held at once so far.")


class KVCache:
    """A key/value cache for decoding: append (k, v) each step, attend with the step's query over
    the keys the cache retains.

    policy "leverage": the keys of largest ℓ2 leverage score under the Gram matrix of every key
    appended (budget mode), or every key with score ≥ eps (threshold mode: for f="pow:2" every
    entry A ≥ eps of every later query stays in the cache); scores refresh every `refresh` appends
    (0: budget/4), and with f="pow:2" every policy refits its normaliser that often (0: budget/4
    for "leverage", budget for the others). "window": the first `sinks` keys and the latest
    budget − sinks. "accumulated" (H2O): the latest budget/2 and the older keys with the most
    attention received. "key_norm": the budget keys of largest norm.
    f: "softmax" (normalised over the retained keys) or "pow:2" (normalised by the exact full
    normaliser over every key appended; missing_mass is then exact). storage: "float32", or
    "float16"/"bfloat16" to hold keys and values rounded to 16 bits (half the bytes; scores and
    attention are then exact for the rounded values). threads: cores each call uses (None: every
    core); results never depend on it. Safe to share between Python threads.
    """

    def __init__(self, d: int, d_v: int, *, policy: str = "leverage", budget: int = 256,
                 eps: Optional[float] = None, sinks: int = 4, refresh: int = 0, f: str = "softmax",
                 scale: Optional[float] = None, storage: str = "float32", threads: Optional[int] = None):
        if not isinstance(policy, str) or not isinstance(f, str) or not isinstance(storage, str):
            raise InputError("policy, f and storage must be strings")
        c = 0.0
        if scale is not None:
            c = real_arg(scale, "scale")
            if not c > 0.0:
                raise InputError(f"scale must be > 0 (or None for the default), got {scale!r}")
        e = 0.0
        if eps is not None:
            e = real_arg(eps, "eps")
            if not 0.0 < e <= 1.0:
                raise InputError(f"eps must lie in (0, 1], got {eps!r}")
        self._d = integer_arg(d, "d", 1)
        self._dv = integer_arg(d_v, "d_v", 1)
        self._core = _levattn.KVCache(self._d, self._dv, policy, integer_arg(budget, "budget", 1), e,
                                      integer_arg(sinks, "sinks", 0), integer_arg(refresh, "refresh", 0), f, c,
                                      storage, threads_arg(threads))

    def append(self, key: Any, value: Any) -> None:
        """Appends one key (d,) and value (d_v,), or rows of them ((rows, d), (rows, d_v)) in order."""
        k = as_matrix(key, "key", (1, 2))
        v = as_matrix(value, "value", (1, 2))
        self._core.append(k.reshape(-1, k.shape[-1]) if k.ndim == 1 else k,
                          v.reshape(-1, v.shape[-1]) if v.ndim == 1 else v)

    def attend(self, query: Any) -> Any:
        """Attention of a query (d,) over the retained keys: (d_v,). Several queries (m, d) are
        attended one after another (each updates the accumulated policy's scores): (m, d_v)."""
        q = as_matrix(query, "query", (1, 2))
        out, _ = self._core.attend(q.reshape(1, -1) if q.ndim == 1 else q)
        return like(out[0] if q.ndim == 1 else out, is_tensor(query))

    def positions(self) -> np.ndarray:
        """Global positions of the retained keys, ascending (int64)."""
        return self._core.positions()

    size = property(lambda self: self._core.size, doc="Keys retained.")
    appended = property(lambda self: self._core.appended, doc="Keys appended so far.")
    missing_mass = property(lambda self: self._core.missing_mass,
                            doc="f='pow:2': 1 − Σ_retained A of the last attend (0 before any).")
    stored_bytes = property(lambda self: self._core.stored_bytes,
                            doc="Bytes of the retained keys and values (2 per element for 16-bit storage).")
