"""16-bit keys (numpy float16, torch float16 and bfloat16) read as they are by leverage_scores,
universal_set (exact and sketched scores, Lewis weights), lewis_weights, heavy_entries (p = 2),
StreamSelector.push and attention(method="lev") with values of their type: the results equal, bit for
bit, those of the same keys widened to float32, and the scores match the float64 SVD reference on the
rounded keys; a float16 array is not converted on the way in (tracemalloc sees no copy)."""
import tracemalloc

import numpy as np
import pytest
import torch

import levattn
from inputs import make_keys
from reference import f64, heavy_ref, leverage_ref

LEVERAGE_RTOL = 1e-4
KINDS = ("gaussian", "low_rank", "duplicates", "heavy_tail", "conditioned")
FORMATS = ("numpy.float16", "torch.float16", "torch.bfloat16")


def rounded(K: np.ndarray, fmt: str):
    """(K rounded to fmt in that array type, the rounded values widened to float32 numpy)."""
    K = K / np.float32(np.max(np.abs(K)) / 1024)  # within float16's range, well above its subnormals
    if fmt == "numpy.float16":
        k = K.astype(np.float16)
        return k, k.astype(np.float32)
    k = torch.from_numpy(K).to(torch.float16 if fmt == "torch.float16" else torch.bfloat16)
    return k, k.float().numpy()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_scores_and_sets_equal_the_widened_keys_and_the_svd_reference(rng, kind, fmt):
    """leverage_scores and universal_set (eps and top_k) of 16-bit keys equal those of the widened keys bit
    for bit, and the scores are within 1e-4 of the SVD scores of the rounded keys."""
    k16, k32 = rounded(make_keys(kind, 700, 16, rng), fmt)
    s16, s32 = levattn.leverage_scores(k16), levattn.leverage_scores(k32)
    assert np.array_equal(f64(s16), f64(s32))
    ref = leverage_ref(k32)
    assert np.max(np.abs(f64(s16) - ref) / np.maximum(np.abs(ref), 1e-300)) <= LEVERAGE_RTOL
    for options in ({"eps": 0.02}, {"top_k": 50}):
        u16, u32 = levattn.universal_set(k16, **options), levattn.universal_set(k32, **options)
        assert np.array_equal(f64(u16.indices), f64(u32.indices)) and np.array_equal(f64(u16.scores), f64(u32.scores))
        assert u16.within_bound and len(u16.indices) > 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_sketched_scores_of_16_bit_keys_equal_the_widened_keys(rng, fmt):
    """leverage_scores and universal_set with approx = 0.5 on 16-bit keys large enough to be sketched
    (30,000 x 128): info says 'sketched', and scores and set equal those of the widened keys bit for bit."""
    k16, k32 = rounded(rng.standard_normal((30000, 128)).astype(np.float32), fmt)
    s16, info = levattn.leverage_scores(k16, approx=0.5, return_info=True)
    s32 = levattn.leverage_scores(k32, approx=0.5)
    assert info["method"] == "sketched"
    assert np.array_equal(f64(s16), f64(s32))
    u16, u32 = levattn.universal_set(k16, eps=0.01, approx=0.5), levattn.universal_set(k32, eps=0.01, approx=0.5)
    assert len(u16.indices) > 0 and np.array_equal(f64(u16.indices), f64(u32.indices))


@pytest.mark.parametrize("fmt", FORMATS)
def test_lewis_weights_and_p3_sets_of_16_bit_keys_equal_the_widened_keys(rng, fmt):
    """lewis_weights (p = 1 and 3, one head and two) and universal_set(p = 3) of 16-bit keys equal those of
    the widened keys bit for bit."""
    k16, k32 = rounded(make_keys("heavy_tail", 2 * 600, 12, rng), fmt)
    for p in (1.0, 3.0):
        assert np.array_equal(f64(levattn.lewis_weights(k16, p)), f64(levattn.lewis_weights(k32, p)))
        heads16 = levattn.lewis_weights(k16.reshape(2, 600, 12), p)
        assert np.array_equal(f64(heads16), f64(levattn.lewis_weights(k32.reshape(2, 600, 12), p)))
    u16, u32 = levattn.universal_set(k16, eps=0.02, p=3.0), levattn.universal_set(k32, eps=0.02, p=3.0)
    assert len(u16.indices) > 0 and np.array_equal(f64(u16.indices), f64(u32.indices))
    assert np.array_equal(f64(u16.scores), f64(u32.scores))


@pytest.mark.parametrize("fmt", FORMATS)
def test_heavy_entries_p2_equal_the_widened_keys_and_brute_force(rng, fmt):
    """heavy_entries (p = 2) of 16-bit keys, one head and three: the widened keys' entries bit for bit, and
    every entry ≥ eps of float64 attention of the rounded keys found, none below."""
    k16, k32 = rounded(make_keys("heavy_tail", 3 * 900, 16, rng), fmt)
    q = rng.standard_normal((3 * 60, 16)).astype(np.float32)
    eps = 0.01
    a, b = levattn.heavy_entries(q, k16, eps), levattn.heavy_entries(q, k32, eps)
    for x, y in zip((a.query, a.key, a.score), (b.query, b.key, b.score)):
        assert np.array_equal(f64(x), f64(y))
    A, _ = heavy_ref(q, k32, eps)
    found = set(zip(f64(a.query).astype(int).tolist(), f64(a.key).astype(int).tolist()))
    strong = set(zip(*(x.tolist() for x in np.nonzero(A >= eps * (1 + 1e-4)))))
    assert strong and strong <= found
    assert all(A[i, j] >= eps * (1 - 1e-4) for i, j in found)
    heads = levattn.heavy_entries(q.reshape(3, 60, 16), k16.reshape(3, 900, 16), eps)
    widened = levattn.heavy_entries(q.reshape(3, 60, 16), k32.reshape(3, 900, 16), eps)
    assert len(heads) == 3 and all(np.array_equal(f64(x.key), f64(y.key)) for x, y in zip(heads, widened))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("p", [1.0, 3.0])
def test_heavy_entries_power_p_of_16_bit_keys_equals_the_widened_keys(rng, fmt, p):
    """heavy_entries with p = 1 and 3 (Lewis weights, sampled normaliser) on 16-bit keys: the widened keys' entries
    and info, bit for bit."""
    k16, k32 = rounded(make_keys("heavy_tail", 500, 8, rng), fmt)
    q = np.concatenate([rng.standard_normal((20, 8)), k32[:20]]).astype(np.float32)
    a, b = levattn.heavy_entries(q, k16, 0.02, p=p), levattn.heavy_entries(q, k32, 0.02, p=p)
    assert len(f64(a.key)) > 0 and a.info["scanned_keys"] > 64  # more than one block of scanned keys
    assert np.array_equal(f64(a.query), f64(b.query)) and np.array_equal(f64(a.key), f64(b.key))
    assert np.array_equal(f64(a.score), f64(b.score)) and a.info == b.info and a.info["estimated"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_selector_pushes_16_bit_blocks_as_the_widened_keys(rng, fmt):
    """StreamSelector fed 16-bit key and value blocks ends in the set, scores, retained keys and values of the
    selector fed the widened blocks; values of another type send the keys through float32, same result."""
    k16, k32 = rounded(make_keys("heavy_tail", 2000, 12, rng), fmt)
    v16, v32 = rounded(rng.standard_normal((2000, 5)).astype(np.float32), fmt)
    sel16 = levattn.StreamSelector(12, eps=0.02, value_dim=5)
    sel32 = levattn.StreamSelector(12, eps=0.02, value_dim=5)
    mixed = levattn.StreamSelector(12, eps=0.02, value_dim=5)
    for begin in range(0, 2000, 300):
        sel16.push(k16[begin:begin + 300], v16[begin:begin + 300])
        sel32.push(k32[begin:begin + 300], v32[begin:begin + 300])
        mixed.push(k16[begin:begin + 300], v32[begin:begin + 300])
    r16, r32, rm = sel16.result(), sel32.result(), mixed.result()
    assert len(f64(r16.indices)) > 0
    for r in (r16, rm):
        for x, y in zip((r.indices, r.scores, r.keys, r.values), (r32.indices, r32.scores, r32.keys, r32.values)):
            assert np.array_equal(f64(x), f64(y))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("f", ["softmax", "pow:2", "pow:3"])
def test_lev_attention_of_16_bit_keys_and_values_equals_the_widened_inputs(rng, fmt, f):
    """attention(method="lev") of 16-bit keys and values (GQA: 4 query heads over 2 key heads; causal with a
    window, and not; pow:3 only not): output, kept keys and pow:P missing mass equal those of the widened inputs bit for
    bit."""
    k16, k32 = rounded(make_keys("heavy_tail", 2 * 2 * 300, 16, rng), fmt)
    v16, v32 = rounded(rng.standard_normal((2 * 2 * 300, 8)).astype(np.float32), fmt)
    k16, k32, v16, v32 = (x.reshape(2, 2, 300, -1) for x in (k16, k32, v16, v32))
    q = (rng.standard_normal((2, 4, 120, 16)) * 0.2).astype(np.float32)
    for causal, window in ((False, 0), (True, 8)) if f != "pow:3" else ((False, 0),):  # pow:3 is not causal
        extras = {"return_missing_mass": True} if f != "softmax" else {}
        a = levattn.attention(q, k16, v16, method="lev", top_k=40, sinks=2, window=window, is_causal=causal, f=f,
                              return_kept=True, **extras)
        b = levattn.attention(q, k32, v32, method="lev", top_k=40, sinks=2, window=window, is_causal=causal, f=f,
                              return_kept=True, **extras)
        assert np.array_equal(f64(a[0]), f64(b[0]))
        assert all(np.array_equal(x, y) for xs, ys in zip(a[1], b[1]) for x, y in zip(xs, ys))
        if f != "softmax":
            assert np.array_equal(f64(a[2]), f64(b[2]))


@pytest.mark.parametrize("fmt", FORMATS)
def test_lev_attention_with_16_bit_queries_in_bnhd_layout_equals_the_widened_inputs(rng, fmt):
    """attention(method="lev") with q, k and v all of one 16-bit type, layout "bnhd" (b, n, h, d): output and
    kept keys equal those of the widened inputs bit for bit."""
    q16, q32 = rounded((rng.standard_normal((2 * 50 * 2, 16)) * 0.2).astype(np.float32), fmt)
    k16, k32 = rounded(make_keys("gaussian", 2 * 200 * 2, 16, rng), fmt)
    v16, v32 = rounded(rng.standard_normal((2 * 200 * 2, 8)).astype(np.float32), fmt)
    q16, q32 = q16.reshape(2, 50, 2, 16), q32.reshape(2, 50, 2, 16)
    k16, k32, v16, v32 = (x.reshape(2, 200, 2, -1) for x in (k16, k32, v16, v32))
    a = levattn.attention(q16, k16, v16, method="lev", top_k=30, layout="bnhd", return_kept=True)
    b = levattn.attention(q32, k32, v32, method="lev", top_k=30, layout="bnhd", return_kept=True)
    assert tuple(a[0].shape) == (2, 50, 2, 8)
    assert np.array_equal(f64(a[0]), f64(b[0]))
    assert all(np.array_equal(x, y) for xs, ys in zip(a[1], b[1]) for x, y in zip(xs, ys))


def test_16_bit_keys_are_not_copied_on_the_way_in(rng):
    """A float16 numpy key array of 8 MiB reaches the core without a float32 copy (16 MiB): tracemalloc,
    which sees numpy's allocations, peaks below 4 MiB during leverage_scores, universal_set, heavy_entries (p = 2
    and 3), StreamSelector.push and attention(method="lev", softmax and pow:3) (with float16 values); a torch
    bfloat16 tensor is handed over as a view of its own memory."""
    k16 = rng.standard_normal((1 << 16, 64)).astype(np.float16)
    q = rng.standard_normal((8, 64)).astype(np.float32)
    selector = levattn.StreamSelector(64, eps=0.01)
    v16 = rng.standard_normal((1 << 16, 64)).astype(np.float16)
    for call in (lambda: levattn.leverage_scores(k16), lambda: levattn.universal_set(k16, eps=0.01),
                 lambda: levattn.heavy_entries(q, k16, 0.01), lambda: levattn.heavy_entries(q, k16, 0.01, p=3.0),
                 lambda: selector.push(k16), lambda: levattn.attention(q, k16, v16, method="lev", top_k=64),
                 lambda: levattn.attention(q, k16, v16, method="lev", top_k=64, f="pow:3")):
        tracemalloc.start()
        try:
            call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 << 20, f"peak {peak} bytes traced"
    t = torch.from_numpy(k16.astype(np.float32)).bfloat16()
    kind, view = levattn._arrays.sixteen_bit(t, "k")
    assert kind == "bfloat16" and view.ctypes.data == t.data_ptr()


def test_16_bit_keys_with_nan_or_inf_name_the_row(rng):
    """A float16 key row holding inf, or a bfloat16 row holding NaN, is refused with InputError naming it."""
    k16 = rng.standard_normal((400, 8)).astype(np.float16)
    k16[123, 4] = np.inf
    with pytest.raises(levattn.InputError, match="123"):
        levattn.leverage_scores(k16)
    kb = torch.from_numpy(rng.standard_normal((400, 8)).astype(np.float32)).bfloat16()
    kb[77, 1] = float("nan")
    with pytest.raises(levattn.InputError, match="77"):
        levattn.heavy_entries(rng.standard_normal((5, 8)).astype(np.float32), kb, 0.1)
