"""levattn.attention (exact and lev) and levattn.merge_attention against the float64 references.

Outputs are compared with an absolute tolerance of (1e-5 + 2ρ_i)·max|V| per row: every attention row is a
convex combination of rows of V (for lev with pow:P, a sub-convex one), so that is the error relative to the
output's scale, and 1e-5 is the library's stated accuracy for float32 compute. ρ_i (reference.rounding_bound)
is what float32 dot products can do to row i's weights when its weight sits on keys whose <q,k> cancels —
below 1e-5 on ordinary rows, larger only on such rows. Log normalisers are compared to 1e-5 + ρ_i absolute
(a relative error of that size in the normaliser), missing masses to 1e-5 + 2ρ_i.
"""
import numpy as np
import pytest
import torch

import levattn
from inputs import KEY_KINDS, SOFTMAX_KINDS, gaussian, qkv
from reference import (attention_error_scale, attention_heads_ref, attention_ref, f64, kv_head, leverage_ref,
                       lewis_sensitivity_ref, power_attention_matrix, power_lev_ref, seen_mask, softmax_lev_ref,
                       top_k_ref)

RTOL = 1e-5
LSE_ATOL = 1e-5


def assert_output_close(out, ref, V, rb, rtol=RTOL):
    """|out − ref| ≤ (rtol + 2ρ)·max|V| row by row (rb: ρ per row, shaped like out without its last axis)."""
    out = f64(out)
    assert out.shape == ref.shape
    assert np.all(np.isfinite(out))
    tol = (rtol + 2 * np.asarray(rb))[..., None] * attention_error_scale(V)
    bad = np.abs(out - ref) > tol
    assert not bad.any(), f"max error {np.max(np.abs(out - ref)):.3g}, scale {attention_error_scale(V):.3g}"


def assert_lse_close(lse, ref, rb):
    """|lse − ref| ≤ 1e-5 + ρ row by row; −inf exactly where the reference has it."""
    lse = f64(lse)
    assert lse.shape == ref.shape
    assert np.array_equal(np.isneginf(lse), np.isneginf(ref))
    fin = np.isfinite(ref)
    err = np.abs(lse[fin] - ref[fin])
    assert np.all(err <= LSE_ATOL + np.asarray(rb)[fin]), f"max error {np.max(err, initial=0):.3g}"


def assert_missing_close(miss, ref, rb):
    """|missing − ref| ≤ 1e-5 + 2ρ row by row."""
    err = np.abs(f64(miss) - ref)
    assert np.all(err <= 1e-5 + 2 * rb), f"max error {np.max(err, initial=0):.3g}"


def shapes(ndim, n_q, n_k, d, d_v, h_q=1, h_kv=1, b=1):
    """(q, k, v) shapes for 2-D (n, d), 3-D (h, n, d) and 4-D (b, h, n, d) inputs."""
    lead_q, lead_k = {2: ((), ()), 3: ((h_q,), (h_kv,)), 4: ((b, h_q), (b, h_kv))}[ndim]
    return lead_q + (n_q, d), lead_k + (n_k, d), lead_k + (n_k, d_v)


def as4(x, ndim):
    """A (n, d) / (h, n, d) / (b, h, n, d) array as (b, h, n, d)."""
    x = f64(x)
    return x.reshape((1,) * (4 - ndim) + x.shape)


# ------------------------------------------------------------------------------------------------
# Exact attention


@pytest.mark.parametrize("ndim,h_q,h_kv", [(2, 1, 1), (3, 3, 3), (3, 4, 2), (4, 2, 2), (4, 4, 2)])
@pytest.mark.parametrize("f", ["softmax", "pow:2", "pow:3"])
@pytest.mark.parametrize("causal,n_q,n_k", [(False, 45, 77), (False, 1, 100), (True, 45, 77), (True, 70, 70),
                                            (True, 33, 33)])
def test_exact_matches_reference_for_every_shape(rng, ndim, h_q, h_kv, f, causal, n_q, n_k):
    """Output and log normaliser equal the float64 reference (see the module docstring), for every input rank,
    grouped-query heads, causal masks with n_q < n_k and n_q = n_k, and lengths not multiples of 32."""
    d, d_v = 24, 12
    sq, sk, sv = shapes(ndim, n_q, n_k, d, d_v, h_q, h_kv, b=2)
    Q, K, V = gaussian(rng, *sq), gaussian(rng, *sk), gaussian(rng, *sv)
    out, lse = levattn.attention(Q, K, V, f=f, is_causal=causal, return_lse=True)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == sq[:-1] + (d_v,)
    assert lse.dtype == np.float64 and lse.shape == sq[:-1]
    ref, ref_lse, rb = attention_heads_ref(as4(Q, ndim), as4(K, ndim), as4(V, ndim), f, causal=causal)
    assert_output_close(as4(out, ndim), ref, V, rb)
    assert_lse_close(lse.reshape(ref_lse.shape), ref_lse, rb)


@pytest.mark.parametrize("f", ["softmax", "pow:2"])
@pytest.mark.parametrize("causal", [False, True])
def test_exact_bnhd_layout_matches_reference(rng, f, causal):
    """layout='bnhd' (b, n, h, d) gives the reference output in that layout and the log normaliser as (b, h, n)."""
    b, n_q, n_k, h_q, h_kv, d, d_v = 2, 37, 50, 4, 2, 16, 8
    Q, K, V = gaussian(rng, b, n_q, h_q, d), gaussian(rng, b, n_k, h_kv, d), gaussian(rng, b, n_k, h_kv, d_v)
    out, lse = levattn.attention(Q, K, V, f=f, is_causal=causal, layout="bnhd", return_lse=True)
    assert out.shape == (b, n_q, h_q, d_v) and lse.shape == (b, h_q, n_q)
    t = (0, 2, 1, 3)
    ref, ref_lse, rb = attention_heads_ref(Q.transpose(t), K.transpose(t), V.transpose(t), f, causal=causal)
    assert_output_close(out, ref.transpose(t), V, rb.transpose(0, 2, 1))
    assert_lse_close(lse, ref_lse, rb)


@pytest.mark.parametrize("f,kind", [("softmax", k) for k in SOFTMAX_KINDS] + [("pow:2", k) for k in KEY_KINDS] +
                         [("pow:3", k) for k in KEY_KINDS])
def test_exact_matches_reference_on_adversarial_keys(rng, f, kind):
    """Low-rank, duplicated, heavy-tailed, huge (1e15), tiny (1e-15) and ill-conditioned keys: output
    and log normaliser equal the reference, causal and not."""
    for causal in (False, True):
        Q, K, V = qkv(rng, (2, 41, 32), (2, 83, 32), 16, kind)
        out, lse = levattn.attention(Q, K, V, f=f, is_causal=causal, return_lse=True)
        ref, ref_lse, rb = attention_heads_ref(Q[None], K[None], V[None], f, causal=causal)
        assert_output_close(out, ref[0], V, rb[0])
        assert_lse_close(lse, ref_lse[0], rb[0])


@pytest.mark.parametrize("f,scale", [("softmax", 0.05), ("softmax", 1.0), ("pow:2", 3.0), ("pow:3", 0.25)])
def test_exact_explicit_scale_matches_reference(rng, f, scale):
    """An explicit scale c enters as f(c<q,k>): output and log normaliser equal the reference."""
    Q, K, V = gaussian(rng, 40, 16), gaussian(rng, 60, 16), gaussian(rng, 60, 8)
    out, lse = levattn.attention(Q, K, V, f=f, scale=scale, return_lse=True)
    ref, ref_lse, rb = attention_ref(Q, K, V, f, scale)
    assert_output_close(out, ref, V, rb)
    assert_lse_close(lse, ref_lse, rb)


def test_exact_causal_row_with_no_visible_key_is_zero():
    """With n_q > n_k under the bottom-right causal mask the first n_q − n_k rows see no key: output 0, lse −inf."""
    rng = np.random.default_rng(5)
    Q, K, V = gaussian(rng, 10, 8), gaussian(rng, 6, 8), gaussian(rng, 6, 4)
    out, lse = levattn.attention(Q, K, V, is_causal=True, return_lse=True)
    ref, ref_lse, rb = attention_ref(Q, K, V, "softmax", causal=True)
    assert np.all(out[:4] == 0) and np.all(np.isneginf(lse[:4]))
    assert_output_close(out, ref, V, rb)
    assert_lse_close(lse, ref_lse, rb)


def test_exact_with_no_queries_or_no_keys_is_empty_or_zero(rng):
    """0 queries give a (0, d_v) output; 0 keys leave every row with nothing to attend: output 0, lse −inf
    (which merge_attention then treats as an empty side, giving the other side's reference)."""
    Q, K, V = gaussian(rng, 5, 8), gaussian(rng, 9, 8), gaussian(rng, 9, 4)
    out, lse = levattn.attention(Q[:0], K, V, return_lse=True)
    assert out.shape == (0, 4) and lse.shape == (0,)
    out0, lse0 = levattn.attention(Q, K[:0], V[:0], return_lse=True)
    assert out0.shape == (5, 4) and np.all(out0 == 0) and np.all(np.isneginf(lse0))
    out1, lse1 = levattn.attention(Q, K, V, return_lse=True)
    o, l = levattn.merge_attention(out0, lse0, out1, lse1)
    ref, ref_lse, rb = attention_ref(Q, K, V)
    assert_output_close(o, ref, V, rb)
    assert_lse_close(l, ref_lse, rb)


NUMPY_DTYPES = [np.float16, np.float32, np.float64]
TORCH_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
@pytest.mark.parametrize("f", ["softmax", "pow:2"])
def test_numpy_dtypes_match_reference_on_rounded_values(rng, dtype, f):
    """float16/float32/float64 numpy inputs: numpy float32 out, equal to the reference on the input values
    (float64 inputs are first rounded to float32, the compute type, so the reference uses those values)."""
    Q, K, V = (gaussian(rng, 3, n, 16, dtype=dtype) for n in (30, 50, 50))
    out, lse = levattn.attention(Q, K, V, f=f, return_lse=True)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    r = [x.astype(np.float32) for x in (Q, K, V)]
    ref, ref_lse, rb = attention_heads_ref(*(x[None] for x in r), f)
    assert_output_close(out, ref[0], V, rb[0])
    assert_lse_close(lse, ref_lse[0], rb[0])


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("method", ["exact", "lev"])
def test_torch_dtypes_give_torch_out_equal_to_numpy(rng, dtype, method):
    """CPU torch tensors of every float dtype give float32 torch tensors, bit-equal to the numpy call on the
    same values (bfloat16: the float32 values it holds), and equal to the reference on the rounded values."""
    Qt, Kt, Vt = (torch.from_numpy(gaussian(rng, 2, n, 16)).to(dtype) for n in (30, 50, 50))
    kw = dict(method=method, f="pow:2")
    if method == "lev":
        kw.update(top_k=20, return_kept=True, return_missing_mass=True)
    else:
        kw.update(return_lse=True)
    got = levattn.attention(Qt, Kt, Vt, **kw)
    assert all(isinstance(x, torch.Tensor) for x in (got[0], got[-1]))
    assert got[0].dtype == torch.float32
    as_np = [x.float().numpy() if dtype == torch.bfloat16 else x.numpy() for x in (Qt, Kt, Vt)]
    want = levattn.attention(*as_np, **kw)
    assert np.array_equal(got[0].numpy(), want[0])
    assert np.array_equal(got[-1].numpy(), want[-1])
    if method == "lev":
        assert all(isinstance(k, torch.Tensor) for k in got[1])
        assert all(np.array_equal(a.numpy(), b) for a, b in zip(got[1], want[1]))
    Qr, Kr, Vr = (f64(x) for x in (Qt, Kt, Vt))
    for h in range(2):
        if method == "exact":
            ref, _, rb = attention_ref(Qr[h], Kr[h], Vr[h], "pow:2")
        else:
            ref, miss, rb = power_lev_ref(Qr[h], Kr[h], Vr[h], got[1][h].numpy())
            assert_missing_close(got[2][h].numpy(), miss, rb)
        assert_output_close(got[0][h], ref, Vr, rb)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sixteen_bit_keys_f32_arithmetic_is_bit_equal_and_bf16_within_bound(rng, dtype):
    """16-bit torch keys and values (queries of the same type, or float32) are read as they are:
    arithmetic='f32' gives the float32 call on the same values bit for bit; arithmetic='bf16' stays within
    1e-2 (output) and 1e-3 (log normaliser) of float64 softmax attention of the values rounded to bf16;
    an unknown arithmetic raises InputError."""
    Qt, Kt, Vt = (torch.from_numpy(gaussian(rng, 2, n, 32)).to(dtype) for n in (70, 300, 300))
    wide = [x.float().numpy() for x in (Qt, Kt, Vt)]
    want, want_lse = levattn.attention(*wide, return_lse=True)
    for q in (Qt, Qt.float()):
        out, lse = levattn.attention(q, Kt, Vt, return_lse=True)
        assert np.array_equal(out.numpy(), want) and np.array_equal(lse.numpy(), want_lse)
    out, lse = levattn.attention(Qt, Kt, Vt, return_lse=True, arithmetic="bf16")
    Qb, Kb, Vb = (f64(x.to(torch.bfloat16)) for x in (Qt, Kt, Vt))
    for h in range(2):
        ref, ref_lse, _ = attention_ref(Qb[h], Kb[h], Vb[h], "softmax")
        assert np.linalg.norm(out[h].numpy() - ref) <= 1e-2 * np.linalg.norm(ref)
        assert np.max(np.abs(lse[h].numpy() - ref_lse) / np.maximum(1.0, np.abs(ref_lse))) <= 1e-3
    with pytest.raises(levattn.InputError, match="arithmetic"):
        levattn.attention(Qt, Kt, Vt, arithmetic="f16")


def strided_variants(x: np.ndarray):
    """Views of the same values with other memory layouts: transposed storage, every other row of a
    twice-as-tall array, and a reversed (negatively strided) view of the reversed array."""
    t = np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)
    tall = np.zeros(x.shape[:-2] + (2 * x.shape[-2], x.shape[-1]), x.dtype)
    tall[..., ::2, :] = x
    rev = np.ascontiguousarray(x[..., ::-1, :])[..., ::-1, :]
    return {"transposed": t, "every_other_row": tall[..., ::2, :], "reversed": rev}


@pytest.mark.parametrize("variant", ["transposed", "every_other_row", "reversed"])
@pytest.mark.parametrize("f", ["softmax", "pow:2"])
def test_non_contiguous_inputs_match_reference(rng, variant, f):
    """Transposed, row-sliced and negatively strided numpy views and torch views give the reference output."""
    Q, K, V = gaussian(rng, 2, 33, 16), gaussian(rng, 2, 47, 16), gaussian(rng, 2, 47, 8)
    views = [strided_variants(x)[variant] for x in (Q, K, V)]
    assert not any(v.flags.c_contiguous for v in views)
    ref, ref_lse, rb = attention_heads_ref(Q[None], K[None], V[None], f, causal=True)
    out, lse = levattn.attention(*views, f=f, is_causal=True, return_lse=True)
    assert_output_close(out, ref[0], V, rb[0])
    assert_lse_close(lse, ref_lse[0], rb[0])
    if variant != "reversed":  # torch has no negative strides
        tv = [torch.from_numpy(v) for v in views]
        assert not tv[0].is_contiguous()
        out_t = levattn.attention(*tv, f=f, is_causal=True)
        assert isinstance(out_t, torch.Tensor)
        assert_output_close(out_t, ref[0], V, rb[0])


@pytest.mark.parametrize("method", ["exact", "lev"])
@pytest.mark.parametrize("f", ["softmax", "pow:2", "pow:3"])
@pytest.mark.parametrize("n_q,n_k", [(1, 9000), (150, 300)])
def test_threads_1_and_2_give_identical_bits(rng, method, f, n_q, n_k):
    """threads=1 and threads=2 give bit-identical outputs (and kept keys), including decode (n_q = 1) over more
    keys than one segment; the outputs equal the reference (lev pow:3: see test_lev_power_is_the_scaled_truncation)."""
    d = 32
    Q, K, V = gaussian(rng, 2, n_q, d), gaussian(rng, 2, n_k, d), gaussian(rng, 2, n_k, 16)
    kw = dict(method=method, f=f)
    if method == "lev":
        kw.update(top_k=n_k // 3, return_kept=True)
    one = levattn.attention(Q, K, V, threads=1, **kw)
    two = levattn.attention(Q, K, V, threads=2, **kw)
    kept = None
    if method == "lev":
        assert all(np.array_equal(a, b) for a, b in zip(one[1], two[1]))
        kept, one, two = one[1], one[0], two[0]
    assert np.array_equal(one, two)
    for h in range(2):
        if method == "exact":
            ref, _, rb = attention_ref(Q[h], K[h], V[h], f)
        elif f == "softmax":
            ref, rb = softmax_lev_ref(Q[h], K[h], V[h], kept[h])
        elif f == "pow:2":
            ref, _, rb = power_lev_ref(Q[h], K[h], V[h], kept[h])
        else:
            continue
        assert_output_close(one[h], ref, V, rb)


# ------------------------------------------------------------------------------------------------
# LevAttention


def assert_kept_is_top_k(kept, scores, k, sinks=0, rtol=1e-4):
    """kept == top-k(scores) ∪ [0, sinks), except keys whose score ties the k-th largest to rtol."""
    kept = np.asarray(kept)
    assert kept.dtype == np.int64 and np.all(np.diff(kept) > 0)
    want = np.union1d(top_k_ref(scores, k), np.arange(sinks))
    kth = np.sort(scores)[::-1][k - 1]
    diff = np.setxor1d(kept, want)
    assert np.all(np.abs(scores[diff] - kth) <= rtol * kth), f"kept differs from the top-{k} at {diff}"
    assert np.all(np.isin(np.arange(sinks), kept))


def assert_kept_is_threshold_set(kept, scores, eps, sinks=0, rtol=1e-4):
    """kept == {j : score_j ≥ eps} ∪ [0, sinks), except keys within rtol of eps."""
    kept = np.asarray(kept)
    assert np.all(np.diff(kept) > 0)
    want = np.union1d(np.flatnonzero(scores >= eps), np.arange(sinks))
    diff = np.setxor1d(kept, want)
    assert np.all(np.abs(scores[diff] - eps) <= rtol * eps), f"kept differs from {{τ ≥ ε}} at {diff}"


def kept_structure(kept, ndim, b, h_kv):
    """The kept index arrays per (batch, key head), checking the nesting: an array (2-D), a list per key
    head (3-D), a list per batch of such lists (4-D)."""
    if ndim == 2:
        assert isinstance(kept, np.ndarray)
        return [[kept]]
    if ndim == 3:
        assert isinstance(kept, list) and len(kept) == h_kv
        return [kept]
    assert isinstance(kept, list) and len(kept) == b and all(isinstance(x, list) and len(x) == h_kv for x in kept)
    return kept


@pytest.mark.parametrize("ndim,h_q,h_kv", [(2, 1, 1), (3, 2, 2), (3, 4, 2), (4, 4, 2)])
@pytest.mark.parametrize("f", ["softmax", "pow:2"])
@pytest.mark.parametrize("sinks", [0, 3])
def test_lev_top_k_keeps_reference_top_k_and_attends_over_them(rng, ndim, h_q, h_kv, f, sinks):
    """Per (batch, key head) the kept keys are the top-k by reference leverage score ∪ the sinks (ties aside);
    the output is attention over them (softmax over the kept keys; pow:2 over the full normaliser) and the
    pow:2 missing mass is 1 − Σ_kept A."""
    b, n_q, n_k, d, d_v, k = 2, 29, 90, 16, 8, 20
    sq, sk, sv = shapes(ndim, n_q, n_k, d, d_v, h_q, h_kv, b)
    Q, K, V = gaussian(rng, *sq), gaussian(rng, *sk), gaussian(rng, *sv)
    extra = dict(return_missing_mass=True) if f == "pow:2" else {}
    res = levattn.attention(Q, K, V, method="lev", f=f, top_k=k, sinks=sinks, return_kept=True, **extra)
    out = res[0]
    assert out.shape == sq[:-1] + (d_v,)
    kept = kept_structure(res[1], ndim, b, h_kv)
    Q4, K4, V4, O4 = as4(Q, ndim), as4(K, ndim), as4(V, ndim), as4(out, ndim)
    M4 = as4(res[2][..., None], ndim)[..., 0] if f == "pow:2" else None
    for bi in range(Q4.shape[0]):
        for g in range(K4.shape[1]):
            assert_kept_is_top_k(kept[bi][g], leverage_ref(K4[bi, g]), k, sinks)
        for h in range(Q4.shape[1]):
            g = kv_head(h, Q4.shape[1], K4.shape[1])
            if f == "softmax":
                ref, rb = softmax_lev_ref(Q4[bi, h], K4[bi, g], V4[bi, g], kept[bi][g])
            else:
                ref, miss, rb = power_lev_ref(Q4[bi, h], K4[bi, g], V4[bi, g], kept[bi][g])
                assert_missing_close(M4[bi, h], miss, rb)
            assert_output_close(O4[bi, h], ref, V, rb)


@pytest.mark.parametrize("kind", ["gaussian", "low_rank", "duplicates", "heavy_tail", "ill_columns"])
@pytest.mark.parametrize("eps", [0.02, 0.1])
def test_lev_eps_pow2_keeps_every_heavy_entry(rng, kind, eps):
    """pow:2 with eps (not causal): kept = {τ ≥ eps} of the reference (boundary aside), every entry A ≥ eps of
    every query is kept, output and missing mass equal the reference over the kept keys."""
    Q, K, V = qkv(rng, (60, 16), (300, 16), 8, kind)
    # add the maximising queries (KᵀK)⁺k_j of some keys, which reach A = τ_j
    Kd = f64(K)
    Q = np.vstack([Q, (np.linalg.pinv(Kd.T @ Kd) @ Kd[:20].T).T.astype(np.float32)])
    out, kept, miss = levattn.attention(Q, K, V, method="lev", f="pow:2", eps=eps, return_kept=True,
                                        return_missing_mass=True)
    assert_kept_is_threshold_set(kept, leverage_ref(K), eps)
    A = power_attention_matrix(Q, K, 2.0)
    heavy_keys = np.flatnonzero(np.any(A >= eps * (1 + 1e-6), axis=0))
    assert np.all(np.isin(heavy_keys, kept))
    ref, ref_miss, rb = power_lev_ref(Q, K, V, kept)
    assert_output_close(out, ref, V, rb)
    assert_missing_close(miss, ref_miss, rb)


@pytest.mark.parametrize("f", ["softmax", "pow:2"])
@pytest.mark.parametrize("n_q,n_k", [(40, 40), (25, 70), (1, 70)])
@pytest.mark.parametrize("window,sinks", [(0, 0), (8, 2), (5, 0)])
def test_lev_causal_window_matches_reference(rng, f, n_q, n_k, window, sinks):
    """Causal lev: query i sees the kept keys j ≤ i + n_k − n_q plus its window of latest keys; output (and
    pow:2 missing mass against the causal prefix normaliser) equal the reference."""
    Q, K, V = gaussian(rng, 2, n_q, 16), gaussian(rng, 2, n_k, 16), gaussian(rng, 2, n_k, 8)
    extra = dict(return_missing_mass=True) if f == "pow:2" else {}
    res = levattn.attention(Q, K, V, method="lev", f=f, top_k=12, sinks=sinks, window=window, is_causal=True,
                            return_kept=True, **extra)
    for h in range(2):
        kept = res[1][h]
        assert_kept_is_top_k(kept, leverage_ref(K[h]), 12, sinks)
        if f == "softmax":
            ref, rb = softmax_lev_ref(Q[h], K[h], V[h], kept, causal=True, window=window)
        else:
            ref, miss, rb = power_lev_ref(Q[h], K[h], V[h], kept, causal=True, window=window)
            assert_missing_close(res[2][h], miss, rb)
        assert_output_close(res[0][h], ref, V, rb)
        empty = ~seen_mask(n_q, n_k, kept, True, window).any(axis=1)
        assert np.all(res[0][h][empty] == 0)


@pytest.mark.parametrize("p", [1.0, 3.0])
@pytest.mark.parametrize("select", [dict(top_k=25), dict(eps=0.03)])
def test_lev_power_is_the_scaled_truncation(rng, p, select):
    """pow:P, P ≠ 2: kept keys are the top-k (or {s ≥ eps}) by reference Lewis sensitivity; each output row
    is the reference truncation Σ_kept A·v times N/Ñ with Ñ ∈ (1 ± delta)·N, the same factor the missing
    mass implies (1 − missing = (1 − true missing)·N/Ñ)."""
    delta = 0.1
    Q, K, V = gaussian(rng, 50, 12), gaussian(rng, 400, 12), gaussian(rng, 400, 6)
    out, kept, miss = levattn.attention(Q, K, V, method="lev", f=f"pow:{p:g}", delta=delta, return_kept=True,
                                        return_missing_mass=True, **select)
    s = lewis_sensitivity_ref(K, p)
    if "top_k" in select:
        assert_kept_is_top_k(kept, s, select["top_k"])
    else:
        assert_kept_is_threshold_set(kept, s, select["eps"])
        A = power_attention_matrix(Q, K, p)
        assert np.all(np.isin(np.flatnonzero(np.any(A >= select["eps"] * (1 + 1e-6), axis=0)), kept))
    assert len(kept) > 0
    trunc, true_miss, rb = power_lev_ref(Q, K, V, kept, p=p)
    none = 1.0 - true_miss <= 1e-12  # rows that give the kept keys no weight: output 0, all mass missing
    assert np.all(out[none] == 0) and np.all(np.abs(miss[none] - 1) <= 1e-5)
    factor = np.ones_like(miss)
    factor[~none] = (1.0 - miss[~none]) / (1.0 - true_miss[~none])
    slack = 1e-5 + 2 * rb
    assert np.all(factor >= 1 / (1 + delta) - slack) and np.all(factor <= 1 / (1 - delta) + slack)
    assert_output_close(out, trunc * factor[:, None], V, rb)


def test_lev_every_key_kept_equals_exact_reference(rng):
    """top_k = n keeps every key: softmax lev equals exact attention's reference, causal or not."""
    Q, K, V = gaussian(rng, 2, 30, 16), gaussian(rng, 2, 50, 16), gaussian(rng, 2, 50, 8)
    for causal in (False, True):
        out, kept = levattn.attention(Q, K, V, method="lev", top_k=50, is_causal=causal, return_kept=True)
        assert all(np.array_equal(k, np.arange(50)) for k in kept)
        ref, _, rb = attention_heads_ref(Q[None], K[None], V[None], causal=causal)
        assert_output_close(out, ref[0], V, rb[0])


@pytest.mark.parametrize("f", ["softmax", "pow:2"])
def test_lev_bnhd_layout_matches_reference(rng, f):
    """layout='bnhd' lev: the output in (b, n, h, d_v) equals the reference on the transposed heads."""
    b, n_q, n_k, h_q, h_kv, d = 2, 20, 64, 4, 2, 16
    Q, K, V = gaussian(rng, b, n_q, h_q, d), gaussian(rng, b, n_k, h_kv, d), gaussian(rng, b, n_k, h_kv, 8)
    extra = dict(return_missing_mass=True) if f == "pow:2" else {}
    res = levattn.attention(Q, K, V, method="lev", f=f, top_k=16, layout="bnhd", return_kept=True, **extra)
    assert res[0].shape == (b, n_q, h_q, 8)
    t = (0, 2, 1, 3)
    Qh, Kh, Vh, Oh = (x.transpose(t) for x in (Q, K, V, res[0]))
    for bi in range(b):
        for h in range(h_q):
            g = kv_head(h, h_q, h_kv)
            kept = res[1][bi][g]
            assert_kept_is_top_k(kept, leverage_ref(Kh[bi, g]), 16)
            if f == "softmax":
                ref, rb = softmax_lev_ref(Qh[bi, h], Kh[bi, g], Vh[bi, g], kept)
            else:
                ref, miss, rb = power_lev_ref(Qh[bi, h], Kh[bi, g], Vh[bi, g], kept)
                assert_missing_close(res[2][bi, h], miss, rb)
            assert_output_close(Oh[bi, h], ref, V, rb)


# ------------------------------------------------------------------------------------------------
# merge_attention


@pytest.mark.parametrize("f", ["softmax", "pow:2", "pow:3"])
@pytest.mark.parametrize("ndim", [2, 3, 4])
def test_merge_of_two_halves_equals_attention_over_all_keys(rng, f, ndim):
    """Attention over the two halves of K, merged, equals the reference attention over all of K (output and
    log normaliser)."""
    sq, sk, sv = shapes(ndim, 31, 70, 16, 8, 2, 2, 2)
    Q, K, V = gaussian(rng, *sq), gaussian(rng, *sk), gaussian(rng, *sv)
    o1, l1 = levattn.attention(Q, K[..., :33, :], V[..., :33, :], f=f, return_lse=True)
    o2, l2 = levattn.attention(Q, K[..., 33:, :], V[..., 33:, :], f=f, return_lse=True)
    o, lse = levattn.merge_attention(o1, l1, o2, l2)
    assert o.dtype == np.float32 and lse.dtype == np.float64 and o.shape == o1.shape
    ref, ref_lse, rb = attention_heads_ref(as4(Q, ndim), as4(K, ndim), as4(V, ndim), f)
    assert_output_close(as4(o, ndim), ref, V, rb)
    assert_lse_close(lse.reshape(ref_lse.shape), ref_lse, rb)


def test_merge_bnhd_layout_equals_attention_over_all_keys(rng):
    """merge_attention(layout='bnhd') of the halves' (b, n, h, d_v) outputs equals the reference over all keys."""
    Q, K, V = gaussian(rng, 2, 25, 4, 16), gaussian(rng, 2, 60, 2, 16), gaussian(rng, 2, 60, 2, 8)
    o1, l1 = levattn.attention(Q, K[:, :21], V[:, :21], layout="bnhd", return_lse=True)
    o2, l2 = levattn.attention(Q, K[:, 21:], V[:, 21:], layout="bnhd", return_lse=True)
    o, lse = levattn.merge_attention(o1, l1, o2, l2, layout="bnhd")
    t = (0, 2, 1, 3)
    ref, ref_lse, rb = attention_heads_ref(Q.transpose(t), K.transpose(t), V.transpose(t))
    assert o.shape == (2, 25, 4, 8)
    assert_output_close(o, ref.transpose(t), V, rb.transpose(0, 2, 1))
    assert_lse_close(lse, ref_lse, rb)


def test_merge_row_with_empty_side_takes_the_other_side(rng):
    """A row whose one side has lse = −inf (pow:2, the query orthogonal to every key of that half) merges to
    the reference over all keys; a row empty on both sides stays 0 with lse −inf; torch in gives torch out."""
    Q, K, V = gaussian(rng, 6, 8), gaussian(rng, 40, 8), gaussian(rng, 40, 4)
    Q[0] = 0
    Q[0, 0] = 1
    K[20:, 0] = 0   # query 0 is orthogonal to the second half
    Q[1] = 0        # query 1 attends to nothing at all
    o1, l1 = levattn.attention(Q, K[:20], V[:20], f="pow:2", return_lse=True)
    o2, l2 = levattn.attention(Q, K[20:], V[20:], f="pow:2", return_lse=True)
    assert np.isneginf(l2[0]) and np.isfinite(l1[0]) and np.isneginf(l1[1]) and np.isneginf(l2[1])
    for a, b in [((o1, l1), (o2, l2)), ((o2, l2), (o1, l1))]:
        o, lse = levattn.merge_attention(*a, *b)
        ref, ref_lse, rb = attention_ref(Q, K, V, "pow:2")
        assert_output_close(o, ref, V, rb)
        assert_lse_close(lse, ref_lse, rb)
        assert np.all(o[1] == 0) and np.isneginf(lse[1])
    ot, lt = levattn.merge_attention(*(torch.from_numpy(x) for x in (o1, l1, o2, l2)))
    assert isinstance(ot, torch.Tensor) and isinstance(lt, torch.Tensor)
    ref, _, rb = attention_ref(Q, K, V, "pow:2")
    assert_output_close(ot, ref, V, rb)
