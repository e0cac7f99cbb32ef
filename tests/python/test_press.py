"""levattn.press and levattn.oracle_top_k against float64 computations written from their definitions:
SVD leverage, solved ridge scores, key norms, causal attention column sums (h2o), pooled window
attention (snapkv), per-query top keys (oracle); shapes, grouped heads, torch in/out, bad input."""
import numpy as np
import pytest
import torch

import levattn
from inputs import KEY_KINDS, gaussian, make_keys, rng_for
from reference import f64, leverage_ref, log_weights, ridge_ref, top_k_ref


def causal_attention(q, k, first: int) -> np.ndarray:
    """Softmax attention (scale 1/√d) of query rows first..n−1 over keys 0..i, float64, (n − first, n)."""
    lw = log_weights(q[first:], k, "softmax")
    n = k.shape[0]
    rows = np.arange(first, n)[:, None]
    lw = np.where(np.arange(n)[None, :] <= rows, lw, -np.inf)
    w = np.exp(lw - lw.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def snapkv_ref(qs, k, window: int, pool: int) -> np.ndarray:
    """The pooled scores of the keys before the window (the window's keys are ranked apart)."""
    n = k.shape[0]
    w = min(window, n)
    mass = sum(causal_attention(q, k, n - w).sum(axis=0) for q in qs)[: n - w]
    padded = np.concatenate([np.zeros(pool // 2), mass, np.zeros(pool // 2)])
    return np.convolve(padded, np.ones(pool), mode="valid") / pool


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_key_only_presses_match_float64(kind):
    rng = rng_for("press", kind)
    K = make_keys(kind, 120, 8, rng)
    kept, scores = levattn.press("leverage", K, 30)
    np.testing.assert_allclose(scores, leverage_ref(K), rtol=1e-4, atol=1e-9)
    assert np.array_equal(kept, top_k_ref(scores, 30))
    ridge = 0.1 * float(np.sum(f64(K) ** 2)) / 8
    np.testing.assert_allclose(levattn.press("ridge", K, 30).scores, ridge_ref(K, ridge), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(levattn.press("key-norm", K, 30).scores, np.sum(f64(K) ** 2, axis=1), rtol=1e-12)
    assert list(levattn.press("streaming", K, 10, sinks=3).kept) == [0, 1, 2, *range(113, 120)]


def test_h2o_and_snapkv_match_float64_over_grouped_heads():
    rng = rng_for("press", "query-aware")
    n, d = 50, 6
    K = gaussian(rng, 2, n, d)                  # 2 key heads
    Q = gaussian(rng, 4, n, d, scale=1.5)       # 4 query heads: heads 0, 1 read key head 0
    h2o = levattn.press("h2o", K, 12, q=Q)
    snap = levattn.press("snapkv", K, 12, q=Q, window=6, pool=3)
    for h in range(2):
        group = [Q[2 * h], Q[2 * h + 1]]
        want = sum(causal_attention(q, K[h], 0).sum(axis=0) for q in group)
        np.testing.assert_allclose(h2o.scores[h], want, rtol=1e-5)
        assert np.array_equal(h2o.kept[h], top_k_ref(h2o.scores[h], 12))
        np.testing.assert_allclose(snap.scores[h][: n - 6], snapkv_ref(group, K[h], 6, 3), rtol=1e-5)
        assert snap.scores[h][n - 6:].min() > snap.scores[h][: n - 6].max()  # the window outranks the rest
        assert np.all(np.diff(snap.scores[h][n - 6:]) > 0)  # latest first
        assert set(range(n - 6, n)) <= set(snap.kept[h].tolist())
    assert list(levattn.press("snapkv", K, 2, q=Q, window=6).kept[0]) == [n - 2, n - 1]


def test_oracle_keeps_each_querys_largest_logits():
    rng = rng_for("press", "oracle")
    K = gaussian(rng, 1, 2, 40, 5)
    Q = gaussian(rng, 1, 4, 7, 5)
    top = levattn.oracle_top_k(Q, K, 6)
    assert top.shape == (1, 4, 7, 6)
    for h in range(4):
        logits = f64(Q[0, h]) @ f64(K[0, h // 2]).T
        for i in range(7):
            assert np.array_equal(top[0, h, i], top_k_ref(logits[i], 6))


def test_torch_in_torch_out_and_leading_dimensions():
    rng = rng_for("press", "torch")
    K = gaussian(rng, 3, 2, 30, 4)
    got = levattn.press("leverage", torch.from_numpy(K), 5)
    assert isinstance(got.kept, torch.Tensor) and got.kept.dtype == torch.int64 and tuple(got.kept.shape) == (3, 2, 5)
    assert tuple(got.scores.shape) == (3, 2, 30)
    np.testing.assert_array_equal(got.kept.numpy(), levattn.press("leverage", K, 5).kept)
    assert levattn.press("random", K[0, 0], 5).kept.shape == (5,)


@pytest.mark.parametrize("call, message", [
    (lambda K, Q: levattn.press("nope", K, 3), "unknown press"),
    (lambda K, Q: levattn.press("h2o", K, 3), "reads the context queries"),
    (lambda K, Q: levattn.press("snapkv", K, 3, q=Q[:, :5]), "must hold one query per key"),
    (lambda K, Q: levattn.press("leverage", K, 0), "budget"),
    (lambda K, Q: levattn.press("leverage", K, 21), "budget"),
    (lambda K, Q: levattn.press("snapkv", K, 3, q=Q, pool=4), "pool must be odd"),
    (lambda K, Q: levattn.press("leverage", np.full((20, 4), np.nan, np.float32), 3), "not finite"),
    (lambda K, Q: levattn.press("h2o", K, 3, q=Q[:, :, :3]), "must hold one query per key"),
    (lambda K, Q: levattn.oracle_top_k(Q, K, 0), "budget"),
    (lambda K, Q: levattn.oracle_top_k(Q[0], K, 2), "same number of dimensions"),
])
def test_bad_input_raises_input_error(call, message):
    rng = rng_for("press", "bad")
    K, Q = gaussian(rng, 2, 20, 4), gaussian(rng, 2, 20, 4)
    with pytest.raises(levattn.InputError, match=message):
        call(K, Q)
    assert levattn.press("leverage", K, 3).kept.shape == (2, 3)  # still works afterwards
