"""levattn.StreamSelector and levattn.KVCache against float64 references (SVD leverage scores, brute-force
attention over the retained keys), and the stream against the offline levattn.universal_set."""
import numpy as np
import pytest

import levattn
from inputs import gaussian, make_keys
from reference import (attention_ref, f64, heavy_ref, leverage_ref, numerical_rank, power_lev_ref,
                       threshold_set_agrees)

STREAM_KINDS = ["gaussian", "low_rank", "duplicates", "heavy_tail", "huge", "tiny", "ill_columns"]
BLOCKS = [1, 7, 500, 33, 0, 1000, 64, 3]  # uneven block sizes, repeated until the keys run out


def planted_keys(kind, n, d, rng):
    """Keys of `kind` with 1% of the rows scaled by 8, so that some keys have large leverage scores."""
    K = make_keys(kind, n, d, rng)
    K[rng.choice(n, n // 100, replace=False)] *= 8
    return K


def push_in_blocks(selector, K, V=None, start=0, stop=None):
    stop = len(K) if stop is None else stop
    i, b = start, 0
    while i < stop:
        s = min(BLOCKS[b % len(BLOCKS)], stop - i)
        selector.push(K[i:i + s], None if V is None else V[i:i + s])
        i, b = i + s, b + 1


def maximising_queries(K, rows):
    Kd = f64(K)
    return (np.linalg.pinv(Kd.T @ Kd) @ Kd[rows].T).T.astype(np.float32)


# ------------------------------------------------------------------------------------------------
# StreamSelector


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_stream_threshold_result_equals_offline_set_and_reference(rng, kind):
    """Keys pushed in uneven blocks: result() indices and scores are bit-equal to universal_set(K, eps), the
    indices equal {τ ≥ eps} of the SVD reference (keys within 1e-6 of eps aside), keys and values are those
    rows, count = n, rank = the numerical rank, bound = rank/eps, and keys were evicted along the way."""
    n, d, eps = 4000, 16, 0.02
    K, V = planted_keys(kind, n, d, rng), gaussian(rng, n, 3)
    sel = levattn.StreamSelector(d, eps=eps, value_dim=3, pending_rows=64)
    push_in_blocks(sel, K, V)
    r = sel.result()
    u = levattn.universal_set(K, eps=eps)
    assert np.array_equal(r.indices, u.indices) and np.array_equal(r.scores, u.scores)
    tau = leverage_ref(K)
    assert len(r.indices) > 0 and threshold_set_agrees(r.indices, tau, eps, 1e-6)
    assert np.allclose(r.scores, tau[r.indices], rtol=1e-4, atol=0)
    assert np.array_equal(r.keys, K[r.indices]) and np.array_equal(r.values, V[r.indices])
    rank = numerical_rank(K)
    assert r.count == n == sel.count == sel.next_index and r.rank == rank
    assert r.bound == pytest.approx(rank / eps, rel=1e-12) and r.within_bound
    assert sel.peak_retained < n


def test_stream_bad_block_leaves_the_selector_unchanged(rng):
    """A block with a NaN key (or an Inf value) raises InputError naming its global row; the keys pushed before
    and after it give the offline set, bit for bit, with the values carried."""
    n, d, eps = 1500, 8, 0.02
    K, V = planted_keys("gaussian", n, d, rng), gaussian(rng, n, 2)
    sel = levattn.StreamSelector(d, eps=eps, value_dim=2, pending_rows=50)
    push_in_blocks(sel, K, V, 0, 700)
    bad = K[700:740].copy()
    bad[5, 3] = np.nan
    with pytest.raises(levattn.InputError, match="row 705"):
        sel.push(bad, V[700:740])
    bad_v = V[700:740].copy()
    bad_v[9, 1] = np.inf
    with pytest.raises(levattn.InputError, match="row 709"):
        sel.push(K[700:740], bad_v)
    assert sel.count == 700 and sel.next_index == 700
    push_in_blocks(sel, K, V, 700, n)
    r = sel.result()
    u = levattn.universal_set(K, eps=eps)
    assert np.array_equal(r.indices, u.indices) and np.array_equal(r.scores, u.scores)
    assert threshold_set_agrees(r.indices, leverage_ref(K), eps, 1e-6)
    assert np.array_equal(r.values, V[r.indices])


def test_stream_merge_of_consecutive_parts_equals_one_selector(rng):
    """A selector over K[:m] merged with one over K[m:] (first_row = m) gives the same result, bit for bit, as
    one selector over K, which equals universal_set(K, eps)."""
    n, d, eps = 3000, 12, 0.02
    K, V = planted_keys("heavy_tail", n, d, rng), gaussian(rng, n, 2)
    m = 1237
    a = levattn.StreamSelector(d, eps=eps, value_dim=2, pending_rows=100)
    b = levattn.StreamSelector(d, eps=eps, value_dim=2, pending_rows=100, first_row=m)
    push_in_blocks(a, K, V, 0, m)
    push_in_blocks(b, K, V, m, n)
    a.merge(b)
    one = levattn.StreamSelector(d, eps=eps, value_dim=2, pending_rows=100)
    push_in_blocks(one, K, V)
    ra, r1 = a.result(), one.result()
    for field in ("indices", "scores", "keys", "values"):
        assert np.array_equal(getattr(ra, field), getattr(r1, field))
    assert ra.count == n and a.next_index == n
    u = levattn.universal_set(K, eps=eps)
    assert np.array_equal(ra.indices, u.indices) and np.array_equal(ra.scores, u.scores)


@pytest.mark.parametrize("kind", ["gaussian", "heavy_tail", "low_rank", "ill_columns"])
@pytest.mark.parametrize("eps_q", [0.02, 0.05])
def test_stream_heavy_equals_brute_force_for_certain_queries(rng, kind, eps_q):
    """heavy(queries, eps_q ≥ eps): for every query not listed as uncertain, the reported keys are exactly
    {j : A_ij ≥ eps_q} over ALL keys pushed (entries within 1e-6 of eps_q aside), scores within 1e-6
    relative; the zero query is counted and has none."""
    n, d, eps = 3000, 16, 0.02
    K = planted_keys(kind, n, d, rng)
    sel = levattn.StreamSelector(d, eps=eps, pending_rows=128)
    push_in_blocks(sel, K)
    tau = leverage_ref(K)
    top = np.argsort(tau)[::-1][:20]
    Q = np.vstack([gaussian(rng, 30, d), K[top[:10]], maximising_queries(K, top[10:]),
                   np.zeros((1, d), np.float32)])
    h = sel.heavy(Q, eps_q)
    assert h.zero_queries == 1
    certain = np.setdiff1d(np.arange(len(Q)), h.uncertain)
    assert len(certain) >= len(Q) - 5
    A, want = heavy_ref(Q, K, eps_q)
    got = set(zip(h.query.tolist(), h.key.tolist()))
    assert len(got) == len(h.query)
    for i, j in got ^ want:
        if i in certain:
            assert abs(A[i, j] - eps_q) <= 1e-6 * eps_q, f"entry ({i}, {j}) with A = {A[i, j]!r}"
    assert np.allclose(h.score, A[h.query, h.key], rtol=1e-6, atol=0)
    assert len(want) > 0


def test_stream_budget_mode_returns_budget_keys_with_final_scores(rng):
    """Budget mode: result() holds `budget` keys, ascending, with their leverage scores over all keys (SVD
    reference, 1e-4 relative); bound = budget."""
    n, d, budget = 2500, 10, 30
    K = planted_keys("gaussian", n, d, rng)
    sel = levattn.StreamSelector(d, budget=budget, pending_rows=200)
    push_in_blocks(sel, K)
    r = sel.result()
    assert len(r.indices) == budget and np.all(np.diff(r.indices) > 0) and r.bound == budget
    assert np.allclose(r.scores, leverage_ref(K)[r.indices], rtol=1e-4, atol=0)
    assert r.values is None


# ------------------------------------------------------------------------------------------------
# KVCache


def check_attend(cache, f, K, V, q, t):
    """cache.attend(q) after appending K[:t]: the reference attention over cache.positions() — softmax over the
    retained keys; pow:2 normalised over all t keys, with missing_mass equal to the reference. Tolerances as in
    test_attention: (1e-5 + 2ρ)·max|V| for the output, 1e-5 + 2ρ for the missing mass."""
    pos = cache.positions()
    out = cache.attend(q)
    assert np.array_equal(pos, cache.positions()) and cache.appended == t and cache.size == len(pos)
    assert np.all(np.diff(pos) > 0) and (len(pos) == 0 or pos[-1] < t)
    scale = float(np.max(np.abs(V[:t])))
    if f == "softmax":
        ref, _, rb = attention_ref(q[None], K[pos], V[pos], "softmax")
    else:
        ref, miss, rb = power_lev_ref(q[None], K[:t], V[:t], pos)
        assert abs(cache.missing_mass - miss[0]) <= 1e-5 + 2 * rb[0]
    assert out.shape == (V.shape[1],) and np.max(np.abs(out - ref[0])) <= (1e-5 + 2 * rb[0]) * scale
    return pos


POLICIES = [("window", dict(budget=16, sinks=4)), ("leverage", dict(budget=24, refresh=5)),
            ("leverage", dict(eps=0.05, refresh=16)), ("accumulated", dict(budget=20)), ("key_norm", dict(budget=20))]


@pytest.mark.parametrize("policy,options", POLICIES)
@pytest.mark.parametrize("f", ["softmax", "pow:2"])
def test_kv_cache_attend_equals_reference_over_retained_positions(rng, policy, options, f):
    """Interleaved appends (single keys and blocks of rows) and attends: every attend equals the reference over
    cache.positions() (pow:2 normalised over every appended key, missing_mass exact); budgets are respected; the
    window policy ends with the sinks and the latest keys, key_norm with the longest keys."""
    n, d, dv = 300, 16, 8
    K, V, Q = planted_keys("gaussian", n, d, rng), gaussian(rng, n, dv), gaussian(rng, n, d)
    cache = levattn.KVCache(d, dv, policy=policy, f=f, **options)
    t = 0
    while t < n:
        step = 1 if t % 3 else 7
        if step == 1:
            cache.append(K[t], V[t])
        else:
            cache.append(K[t:t + step], V[t:t + step])
        t = min(n, t + step)
        if t % 4 == 0 or t == n:
            check_attend(cache, f, K, V, Q[t - 1], t)
        if "budget" in options:
            assert cache.size <= options["budget"]
    if policy == "window":
        assert np.array_equal(cache.positions(), np.r_[0:4, n - 12:n])
    if policy == "key_norm":  # the 20 longest keys (norms in float64; no ties in gaussian keys)
        norms = np.einsum("ij,ij->i", K.astype(np.float64), K.astype(np.float64))
        assert np.array_equal(cache.positions(), np.sort(np.argsort(-norms)[:20]))


@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_kv_cache_sixteen_bit_storage_is_exact_for_rounded_keys_and_halves_bytes(rng, storage):
    """storage="float16"/"bfloat16": every attend equals the float32 cache fed the same keys and values
    rounded to that type (to 1e-6, relative to the largest value), the leverage policy keeps the same
    positions, and stored_bytes is half the float32 cache's; a float16 key beyond 65504 raises InputError."""
    n, d, dv = 200, 16, 8
    K, V, Q = planted_keys("gaussian", n, d, rng), gaussian(rng, n, dv), gaussian(rng, n, d)
    if storage == "float16":
        Kr, Vr = K.astype(np.float16).astype(np.float32), V.astype(np.float16).astype(np.float32)
    else:  # round to nearest even on the top 16 bits
        def bf16(x):
            b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
            return (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)
        Kr, Vr = bf16(K), bf16(V)
    half = levattn.KVCache(d, dv, policy="leverage", budget=24, refresh=5, f="pow:2", storage=storage)
    full = levattn.KVCache(d, dv, policy="leverage", budget=24, refresh=5, f="pow:2")
    for t in range(n):
        half.append(K[t], V[t])
        full.append(Kr[t], Vr[t])
        if t % 10 == 9:
            a, b = half.attend(Q[t]), full.attend(Q[t])
            assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(Vr))
            assert np.array_equal(half.positions(), full.positions())
            assert half.stored_bytes * 2 == full.stored_bytes == full.size * (d + dv) * 4
    if storage == "float16":
        with pytest.raises(levattn.InputError, match="overflows float16"):
            half.append(np.full(d, 7e4, dtype=np.float32), V[0])
        assert half.appended == n


def test_kv_cache_window_positions_are_sinks_and_latest(rng):
    """Window policy: after every append the positions are the first `sinks` keys and the latest budget − sinks."""
    d, budget, sinks = 8, 10, 3
    cache = levattn.KVCache(d, 4, policy="window", budget=budget, sinks=sinks)
    K, V = gaussian(rng, 40, d), gaussian(rng, 40, 4)
    for t in range(1, 41):
        cache.append(K[t - 1], V[t - 1])
        want = np.arange(t) if t <= budget else np.r_[0:sinks, t - (budget - sinks):t]
        assert np.array_equal(cache.positions(), want)


def test_kv_cache_attends_several_queries_in_order(rng):
    """attend with (m, d) queries returns (m, d_v), each row the reference over the retained positions."""
    d, dv = 8, 5
    cache = levattn.KVCache(d, dv, policy="window", budget=12, sinks=2, f="pow:2")
    K, V, Q = gaussian(rng, 30, d), gaussian(rng, 30, dv), gaussian(rng, 6, d)
    cache.append(K, V)
    pos = cache.positions()
    out = cache.attend(Q)
    ref, miss, rb = power_lev_ref(Q, K, V, pos)
    assert out.shape == (6, dv) and np.all(np.abs(out - ref) <= (1e-5 + 2 * rb[:, None]) * np.max(np.abs(V)))
    assert abs(cache.missing_mass - miss[-1]) <= 1e-5 + 2 * rb[-1]


@pytest.mark.parametrize("kind", ["gaussian", "heavy_tail", "low_rank"])
def test_kv_cache_threshold_pow2_keeps_every_heavy_entry(rng, kind):
    """Threshold mode (eps) with pow:2: after all appends, every key with reference τ ≥ eps over all keys is
    retained, and every entry A ≥ eps of later queries (random, key copies, maximisers) is on a retained key."""
    n, d, eps = 600, 16, 0.05
    K, V = planted_keys(kind, n, d, rng), gaussian(rng, n, 4)
    cache = levattn.KVCache(d, 4, policy="leverage", eps=eps, refresh=10, f="pow:2")
    for t in range(n):
        cache.append(K[t], V[t])
    pos = cache.positions()
    assert len(pos) < n
    tau = leverage_ref(K)
    assert np.all(np.isin(np.flatnonzero(tau >= eps * (1 + 1e-6)), pos))
    top = np.argsort(tau)[::-1][:20]
    Q = np.vstack([gaussian(rng, 30, d), K[top[:10]], maximising_queries(K, top[10:])])
    _, heavy = heavy_ref(Q, K, eps * (1 + 1e-6))
    assert len(heavy) > 0 and {j for _, j in heavy} <= set(pos.tolist())
    for q in Q[:5]:
        check_attend(cache, "pow:2", K, V, q, n)


def test_kv_cache_bad_block_leaves_the_cache_unchanged(rng):
    """Appending a block whose third row holds an Inf raises InputError naming that key and appends
    none of the block; attending queries whose second row holds a NaN raises and leaves the
    accumulated scores as they were (the next attention equals that of a fresh twin cache)."""
    K, V = rng.standard_normal((10, 4)).astype(np.float32), rng.standard_normal((10, 3)).astype(np.float32)
    twin = [levattn.KVCache(4, 3, policy="accumulated", budget=6) for _ in range(2)]
    for c in twin:
        c.append(K[:5], V[:5])
    bad = K[5:].copy()
    bad[2, 1] = np.inf
    with pytest.raises(levattn.InputError, match="key or value 7 "):
        twin[0].append(bad, V[5:])
    assert twin[0].appended == 5 and np.array_equal(twin[0].positions(), twin[1].positions())
    queries = K[:3].copy()
    queries[1, 0] = np.nan
    with pytest.raises(levattn.InputError, match="query row 1"):
        twin[0].attend(queries)
    for c in twin:
        c.append(K[5:], V[5:])
    assert np.array_equal(twin[0].positions(), twin[1].positions())
    assert np.array_equal(twin[0].attend(K[0]), twin[1].attend(K[0]))
