"""levattn.leverage_scores, lewis_weights, universal_set and heavy_entries against float64 references
(SVD leverage scores, solved ridge scores, the plain Cohen–Peng Lewis iteration, brute-force A)."""
import numpy as np
import pytest
import torch

import levattn
from inputs import KEY_KINDS, built_rank, conditioned, gaussian, make_keys
from reference import (f64, heavy_ref, leverage_ref, lewis_ref, lewis_sensitivity_ref, numerical_rank, ridge_ref,
                       threshold_set_agrees, top_k_ref)

# Relative accuracy the library states for leverage scores against a float64 SVD (cond(K) ≤ 1e3, column
# scaling not counted), and the one the tests hold Lewis weights to (fixed-point tolerance 1e-6, contraction
# ≤ 1/2 for the p used here, so the weights are within ~2e-6 of the fixed point).
LEVERAGE_RTOL = 1e-4
LEWIS_RTOL = 1e-4


def assert_rel_close(got, want, rtol):
    got, want = f64(got), f64(want)
    assert got.shape == want.shape
    err = np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)) if got.size else 0.0
    assert err <= rtol, f"max relative error {err:.3g}"


def maximising_queries(K, rows):
    """q = (KᵀK)⁺k_j, which gives key j the attention A = τ_j (the largest any query can give it)."""
    Kd = f64(K)
    return (np.linalg.pinv(Kd.T @ Kd) @ Kd[rows].T).T.astype(np.float32)


def stress_queries(rng, K, m):
    """Random queries at the keys' scale, copies of keys, maximisers, a zero row and rows scaled by 1e20."""
    scale = float(np.sqrt(np.mean(f64(K) ** 2)))
    return np.vstack([gaussian(rng, m, K.shape[1], scale=scale), K[:8], maximising_queries(K, np.arange(8, 24)),
                      np.zeros((1, K.shape[1]), np.float32),
                      gaussian(rng, 2, K.shape[1], scale=1e20)]).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Leverage scores


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_leverage_scores_match_svd_and_sum_to_rank(rng, kind):
    """Exact leverage scores are within 1e-4 (relative) of the SVD reference on every kind of keys (cond ≤ 1e3
    after column scaling; low-rank keys included) and sum to the numerical rank."""
    K = make_keys(kind, 600, 24, rng)
    s, info = levattn.leverage_scores(K, return_info=True)
    assert isinstance(s, np.ndarray) and s.dtype == np.float64 and s.shape == (600,)
    assert_rel_close(s, leverage_ref(K), LEVERAGE_RTOL)
    rank = numerical_rank(K)
    assert rank == built_rank(kind, 24) and info["rank"] == rank
    assert abs(s.sum() - rank) <= 1e-6 * rank


def test_leverage_scores_of_rank_deficient_keys_with_zero_rows_and_columns(rng):
    """Keys with zero rows, a zero column and rank 5 of 12: scores match the SVD reference, zero rows score 0,
    and the sum is 5."""
    K = (gaussian(rng, 300, 5) @ gaussian(rng, 5, 12)).astype(np.float32)
    K[:, 3] = 0
    K[::7] = 0
    s = levattn.leverage_scores(K)
    ref = leverage_ref(K)
    assert np.all(s[::7] == 0)
    nz = np.any(K != 0, axis=1)
    assert_rel_close(s[nz], ref[nz], LEVERAGE_RTOL)
    assert abs(s.sum() - 5) <= 1e-6 * 5


@pytest.mark.parametrize("ridge", [1e-3, 1.0, 50.0])
@pytest.mark.parametrize("kind", ["gaussian", "low_rank", "heavy_tail"])
def test_ridge_scores_match_solve(rng, ridge, kind):
    """ridge = λ gives k_jᵀ(KᵀK + λI)⁻¹k_j within 1e-4 relative of a float64 solve."""
    K = make_keys(kind, 400, 16, rng)
    assert_rel_close(levattn.leverage_scores(K, ridge=ridge), ridge_ref(K, ridge), LEVERAGE_RTOL)


@pytest.mark.parametrize("fraction", [1e-6, 1e-2, 1.0])
@pytest.mark.parametrize("kind", ["ill_columns", "huge", "tiny", "conditioned"])
def test_ridge_scores_match_solve_at_the_keys_scale(rng, fraction, kind):
    """λ a fraction of the mean eigenvalue ‖K‖²_F/d: within 1e-4 relative of a float64 solve, also when
    columns differ in scale by 1e12 (λ then dwarfs the small columns' own Gram entries)."""
    K = make_keys(kind, 400, 16, rng)
    ridge = fraction * float(np.sum(f64(K) ** 2)) / 16
    assert_rel_close(levattn.leverage_scores(K, ridge=ridge), ridge_ref(K, ridge), LEVERAGE_RTOL)


def test_leverage_scores_per_head_and_torch_in_torch_out(rng):
    """(h, n, d) keys give (h, n) scores, each head its own SVD reference; a torch tensor gives a float64 tensor."""
    K = np.stack([make_keys(kind, 200, 8, rng) for kind in ("gaussian", "low_rank", "heavy_tail")])
    s = levattn.leverage_scores(K)
    assert s.shape == (3, 200)
    for h in range(3):
        assert_rel_close(s[h], leverage_ref(K[h]), LEVERAGE_RTOL)
    st = levattn.leverage_scores(torch.from_numpy(K))
    assert isinstance(st, torch.Tensor) and st.dtype == torch.float64
    assert np.array_equal(st.numpy(), s)


@pytest.mark.parametrize("kind", ["gaussian", "heavy_tail"])
def test_sketched_scores_within_gamma_for_all_but_a_small_fraction(rng, kind):
    """approx = 0.5 on keys large enough to be sketched (info['method'] == 'sketched'): all but at most a
    `failure` fraction of the scores lie in [τ/(1+γ), (1+γ)τ] of the SVD reference; the universal set at eps
    keeps all but a `failure` fraction of the keys with τ ≥ eps, no key with τ < eps/(1+γ)² beyond that
    fraction, and at most (1+γ)²·rank/eps keys."""
    gamma, failure = 0.5, 0.05
    K = make_keys(kind, 30000, 128, rng)
    s, info = levattn.leverage_scores(K, approx=gamma, failure=failure, seed=3, return_info=True)
    assert info["method"] == "sketched" and info["failure_bound"] <= failure
    tau = leverage_ref(K)
    ratio = s / tau
    assert np.mean((ratio < 1 / (1 + gamma)) | (ratio > 1 + gamma)) <= failure
    eps = 0.0055  # about 1.3 times the mean score 128/30000: a few hundred keys above it
    u = levattn.universal_set(K, eps=eps, approx=gamma, failure=failure, seed=3)
    assert u.info["method"] == "sketched"
    heavy = tau >= eps
    assert heavy.sum() >= 20
    assert np.mean(~np.isin(np.flatnonzero(heavy), u.indices)) <= failure
    assert np.mean(tau[u.indices] < eps / (1 + gamma) ** 2) <= failure
    assert u.bound == pytest.approx((1 + gamma) ** 2 * 128 / eps, rel=1e-12)
    assert u.within_bound and len(u.indices) <= u.bound


# ------------------------------------------------------------------------------------------------
# Lewis weights

# (conditioned, p = 3) is test_lewis_weights_p3_converge_on_cond_1e3_keys below, on fixed data that shows the bug.
LEWIS_CASES = [(kind, p) for kind in ["gaussian", "low_rank", "duplicates", "heavy_tail", "huge", "tiny",
                                      "ill_columns", "conditioned"] for p in (0.5, 1.0, 3.0)
               if (kind, p) != ("conditioned", 3.0)]


@pytest.mark.parametrize("kind,p", LEWIS_CASES)
def test_lewis_weights_match_cohen_peng_reference_and_sum_to_rank(rng, p, kind):
    """ℓp Lewis weights (p = 0.5, 1, 3) are within 1e-4 relative of the float64 Cohen–Peng fixed point and sum
    to the rank; leverage_scores(k, p=p) gives the same weights."""
    K = make_keys(kind, 400, 16, rng)
    w, info = levattn.lewis_weights(K, p, return_info=True)
    ref = lewis_ref(K, p)
    assert_rel_close(w, ref, LEWIS_RTOL)
    rank = built_rank(kind, 16)
    assert info["rank"] == rank
    assert abs(w.sum() - rank) <= 1e-5 * rank
    assert_rel_close(levattn.leverage_scores(K, p=p), ref, LEWIS_RTOL)


def test_lewis_weights_p3_converge_on_cond_1e3_keys():
    """p = 3 on keys with cond(K) = 1e3 (n = 400, d = 16; fixed data): the default call returns weights within
    1e-4 of the Cohen–Peng reference that sum to 16."""
    K = conditioned(np.random.default_rng(0), 400, 16, 1e3).astype(np.float32)
    w = levattn.lewis_weights(K, 3.0)
    assert_rel_close(w, lewis_ref(K, 3.0), LEWIS_RTOL)
    assert abs(w.sum() - 16) <= 1e-5 * 16


@pytest.mark.parametrize("p", [0.5, 1.0, 3.0])
def test_lewis_weights_on_cond_1e5_keys_are_as_accurate_as_their_reported_residual(p):
    """On keys with cond(K) = 1e5 (n = 4,000, d = 32) rounding holds the residual above 1e-6: the call returns
    with info["limited_by_rounding"], a residual in (1e-6, 1e-3], and weights within 3× that residual of the
    float64 Cohen–Peng fixed point."""
    K = conditioned(np.random.default_rng(0), 4000, 32, 1e5).astype(np.float32)
    w, info = levattn.lewis_weights(K, p, return_info=True)
    assert info["limited_by_rounding"] and 1e-6 < info["residual"] <= 1e-3
    ref = lewis_ref(K, p, tol=1e-9)
    assert np.max(np.abs(w - ref) / ref) <= 3 * info["residual"]


def test_lewis_weights_per_head(rng):
    """(h, n, d) keys give (h, n) weights, each head its own reference."""
    K = np.stack([make_keys("gaussian", 150, 6, rng) for _ in range(3)])
    w = levattn.lewis_weights(K, 1.0)
    assert w.shape == (3, 150)
    for h in range(3):
        assert_rel_close(w[h], lewis_ref(K[h], 1.0), LEWIS_RTOL)


# ------------------------------------------------------------------------------------------------
# Universal sets


@pytest.mark.parametrize("kind", ["gaussian", "low_rank", "duplicates", "heavy_tail", "huge", "tiny", "ill_columns",
                                  "conditioned"])
@pytest.mark.parametrize("eps", [0.01, 0.05, 0.3])
def test_universal_set_by_eps_equals_reference_threshold_set(rng, kind, eps):
    """p = 2: indices = {τ ≥ eps} of the SVD reference (keys within 1e-6 relative of eps aside), ascending, with
    their reference scores; bound = rank/eps, len ≤ bound; every entry A ≥ eps of stress queries uses a kept key."""
    K = make_keys(kind, 500, 16, rng)
    u = levattn.universal_set(K, eps=eps)
    tau = leverage_ref(K)
    assert u.indices.dtype == np.int64 and np.all(np.diff(u.indices) > 0)
    assert threshold_set_agrees(u.indices, tau, eps, 1e-6)
    assert_rel_close(u.scores, tau[u.indices], LEVERAGE_RTOL)
    rank = numerical_rank(K)
    assert u.bound == pytest.approx(rank / eps, rel=1e-12)
    assert u.within_bound and len(u.indices) <= u.bound and u.info["rank"] == rank
    A, heavy = heavy_ref(stress_queries(rng, K, 40), K, eps * (1 + 1e-6))
    assert {j for _, j in heavy} <= set(u.indices.tolist())


@pytest.mark.parametrize("p", [1.0, 3.0])
@pytest.mark.parametrize("kind", ["gaussian", "heavy_tail", "low_rank"])
def test_universal_set_for_power_p_uses_lewis_sensitivities(rng, p, kind):
    """p ≠ 2: indices = {s ≥ eps} with s the reference Lewis sensitivities (w for p ≤ 2, r^{p/2−1}·w for p > 2;
    keys within 1e-4 of eps aside); bound = r/eps (p ≤ 2) or r^{p/2}/eps (p > 2); every entry A ≥ eps of
    |x|^p attention for stress queries uses a kept key."""
    eps = 0.05
    K = make_keys(kind, 400, 12, rng)
    u = levattn.universal_set(K, eps=eps, p=p)
    s = lewis_sensitivity_ref(K, p)
    assert threshold_set_agrees(u.indices, s, eps, 1e-4)
    assert_rel_close(u.scores, s[u.indices], LEWIS_RTOL)
    r = built_rank(kind, 12)
    assert u.bound == pytest.approx((r ** (p / 2) if p > 2 else r) / eps, rel=1e-5)
    assert u.within_bound and len(u.indices) <= u.bound
    _, heavy = heavy_ref(stress_queries(rng, K, 40), K, eps * (1 + 1e-6), p)
    assert {j for _, j in heavy} <= set(u.indices.tolist())


@pytest.mark.parametrize("p", [2.0, 1.0])
@pytest.mark.parametrize("top_k", [1, 17, 200])
def test_universal_set_top_k_equals_reference_top_k(rng, p, top_k):
    """top_k: the k largest reference scores (ties within 1e-4 aside), ascending, with their scores; bound = k."""
    K = make_keys("heavy_tail", 200, 10, rng)
    u = levattn.universal_set(K, top_k=top_k, p=p)
    s = leverage_ref(K) if p == 2 else lewis_sensitivity_ref(K, p)
    assert len(u.indices) == top_k and np.all(np.diff(u.indices) > 0)
    kth = np.sort(s)[::-1][top_k - 1]
    diff = np.setxor1d(u.indices, top_k_ref(s, top_k))
    assert np.all(np.abs(s[diff] - kth) <= 1e-4 * kth)
    assert_rel_close(u.scores, s[u.indices], 1e-4)
    assert u.bound == top_k


def test_universal_set_per_head_returns_a_list(rng):
    """(h, n, d) keys give one UniversalSet per head, each equal to its head's reference threshold set."""
    K = np.stack([make_keys(kind, 300, 8, rng) for kind in ("gaussian", "duplicates")])
    us = levattn.universal_set(K, eps=0.05)
    assert isinstance(us, list) and len(us) == 2 and all(isinstance(u, levattn.UniversalSet) for u in us)
    for h in range(2):
        assert threshold_set_agrees(us[h].indices, leverage_ref(K[h]), 0.05, 1e-6)
    ut = levattn.universal_set(torch.from_numpy(K), eps=0.05)
    assert all(isinstance(u.indices, torch.Tensor) and np.array_equal(u.indices.numpy(), v.indices)
               for u, v in zip(ut, us))


# ------------------------------------------------------------------------------------------------
# Heavy entries


@pytest.mark.parametrize("kind", KEY_KINDS)
@pytest.mark.parametrize("eps", [0.02, 0.1])
def test_heavy_entries_p2_equal_brute_force(rng, kind, eps):
    """p = 2: the reported (query, key) set equals {A ≥ eps} of the brute-force matrix (entries within 1e-6
    relative of eps aside), sorted by (query, key), with scores within 1e-6 relative; the zero query has none."""
    K = make_keys(kind, 400, 16, rng)
    Q = stress_queries(rng, K, 40)
    h = levattn.heavy_entries(Q, K, eps)
    A, want = heavy_ref(Q, K, eps)
    got = set(zip(h.query.tolist(), h.key.tolist()))
    assert len(got) == len(h.query)
    for i, j in got ^ want:
        assert abs(A[i, j] - eps) <= 1e-6 * eps, f"entry ({i}, {j}) with A = {A[i, j]!r}"
    assert np.all(np.diff(h.query * len(K) + h.key) > 0)
    assert_rel_close(h.score, A[h.query, h.key], 1e-6)
    assert h.info["zero_queries"] == 1 and not h.info["estimated"]
    zero_row = 8 + 16 + 40
    assert zero_row not in h.query.tolist()


@pytest.mark.parametrize("p", [1.0, 3.0])
@pytest.mark.parametrize("kind", ["gaussian", "low_rank", "duplicates", "heavy_tail", "huge", "tiny", "ill_columns"])
def test_heavy_entries_power_p_have_recall_one(rng, p, kind):
    """p = 1, 3: every brute-force entry A ≥ eps is reported; every reported entry has A ≥ eps(1−δ)/(1+δ);
    scores are within the normaliser's (1 ± δ) of A."""
    eps, delta = 0.05, 0.1
    K = make_keys(kind, 400, 16, rng)
    Q = stress_queries(rng, K, 40)
    h = levattn.heavy_entries(Q, K, eps, p=p, delta=delta, seed=1)
    A, want = heavy_ref(Q, K, eps * (1 + 1e-9), p)
    got = set(zip(h.query.tolist(), h.key.tolist()))
    assert want <= got, f"missed {sorted(want - got)[:5]}"
    true = A[h.query, h.key]
    assert np.all(true >= eps * (1 - delta) / (1 + delta))
    assert np.all(h.score >= true / (1 + delta) * (1 - 1e-9)) and np.all(h.score <= true / (1 - delta) * (1 + 1e-9))


def test_heavy_entries_per_head_returns_a_list(rng):
    """(h, m, d) queries and (h, n, d) keys give one HeavyEntries per head, each equal to its brute force."""
    K = np.stack([make_keys("gaussian", 200, 8, rng) for _ in range(2)])
    Q = np.stack([stress_queries(rng, K[h], 20) for h in range(2)])
    hs = levattn.heavy_entries(Q, K, 0.05)
    assert isinstance(hs, list) and len(hs) == 2
    for h in range(2):
        A, want = heavy_ref(Q[h], K[h], 0.05)
        got = set(zip(hs[h].query.tolist(), hs[h].key.tolist()))
        assert all(abs(A[i, j] - 0.05) <= 5e-8 for i, j in got ^ want)
