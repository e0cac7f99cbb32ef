"""Bad calls end in the documented exception (levattn.InputError, a ValueError and a levattn.Error), never a
crash or another exception type, and leave the process healthy."""
import numpy as np
import torch

import levattn
from reference import attention_ref, leverage_ref

_r = np.random.default_rng(0)
Q = _r.standard_normal((5, 4)).astype(np.float32)
K = _r.standard_normal((7, 4)).astype(np.float32)
V = _r.standard_normal((7, 3)).astype(np.float32)


def with_value(a, index, value):
    a = a.copy()
    a[index] = value
    return a


def attn(**kw):
    return lambda: levattn.attention(Q, K, V, **kw)


def grad_tensor():
    return torch.from_numpy(K).requires_grad_(True)


def selector(**kw):
    return lambda: levattn.StreamSelector(4, **kw)


def cache(**kw):
    args = dict(d=4, d_v=3)
    args.update(kw)
    return lambda: levattn.KVCache(**args)


def stream_push(keys, values=None, **kw):
    def call():
        s = levattn.StreamSelector(4, eps=0.1, **kw)
        s.push(K, V if kw.get("value_dim") else None)  # a good block first: errors name global rows
        s.push(keys, values)
    return call


def cache_call(method, *args):
    def call():
        c = levattn.KVCache(4, 3)
        c.append(K[0], V[0])
        getattr(c, method)(*args)
    return call


# (name, call, fragment the message must contain or None)
BAD_CALLS = [
    # non-finite values: the message names the offending row where the library gives one
    ("q NaN", lambda: levattn.attention(with_value(Q, (2, 1), np.nan), K, V), "queries: batch 0, head 0, row 2"),
    ("k Inf", lambda: levattn.attention(Q, with_value(K, (3, 0), np.inf), V), "keys: batch 0, head 0, row 3"),
    ("v -Inf", lambda: levattn.attention(Q, K, with_value(V, (1, 2), -np.inf)), "values: batch 0, head 0, row 1"),
    ("lev k NaN", lambda: levattn.attention(Q, with_value(K, (3, 0), np.nan), V, method="lev", top_k=2),
     "keys: row 3"),
    ("leverage NaN", lambda: levattn.leverage_scores(with_value(K, (4, 1), np.nan)), "row 4"),
    ("lewis Inf", lambda: levattn.lewis_weights(with_value(K, (5, 1), np.inf), 1.0), "row 5"),
    ("universal_set NaN", lambda: levattn.universal_set(with_value(K, (6, 0), np.nan), eps=0.1), "row 6"),
    ("heavy q NaN", lambda: levattn.heavy_entries(with_value(Q, (1, 1), np.nan), K, 0.1), "row 1"),
    ("heavy k Inf", lambda: levattn.heavy_entries(Q, with_value(K, (2, 2), np.inf), 0.1), "row 2"),
    ("merge o1 NaN", lambda: levattn.merge_attention(with_value(Q, (3, 0), np.nan), np.zeros(5), Q, np.zeros(5)),
     "row 3"),
    ("merge o2 Inf", lambda: levattn.merge_attention(Q, np.zeros(5), with_value(Q, (2, 1), np.inf), np.zeros(5)),
     "row 2"),
    ("merge lse NaN", lambda: levattn.merge_attention(Q, with_value(np.zeros(5), 1, np.nan), Q, np.zeros(5)),
     "row 1"),
    ("merge lse +inf", lambda: levattn.merge_attention(Q, np.zeros(5), Q, with_value(np.zeros(5), 4, np.inf)),
     "row 4"),
    ("stream push NaN", stream_push(with_value(K, (3, 3), np.nan)), "row 10"),
    ("cache append Inf", cache_call("append", with_value(K[1], 0, np.inf), V[1]), "key or value 1 "),
    ("cache attend NaN", cache_call("attend", with_value(Q[0], 2, np.nan)), "query row 0"),
    ("softmax logits overflow", lambda: levattn.attention(Q * 1e20, K * 1e20, V), None),
    # shapes
    ("q 1-D", lambda: levattn.attention(Q[0], K, V), None),
    ("q 5-D", lambda: levattn.attention(Q[None, None, None], K[None, None, None], V[None, None, None]), None),
    ("ndim mismatch", lambda: levattn.attention(Q[None], K, V), None),
    ("mismatched d", lambda: levattn.attention(Q[:, :3], K, V), None),
    ("k and v rows differ", lambda: levattn.attention(Q, K, V[:6]), None),
    ("heads not a multiple", lambda: levattn.attention(np.stack([Q] * 3), np.stack([K] * 2), np.stack([V] * 2)), None),
    ("batch mismatch", lambda: levattn.attention(Q[None, None], np.stack([K[None]] * 2), np.stack([V[None]] * 2)),
     None),
    ("bnhd on 3-D", attn(layout="bnhd"), None),
    ("lev empty k", lambda: levattn.attention(Q, K[:0], V[:0], method="lev", top_k=1), None),
    ("heavy empty k", lambda: levattn.heavy_entries(Q, K[:0], 0.1), None),
    ("selector push empty width", stream_push(K[:0, :0]), None),
    ("empty keys scores", lambda: levattn.leverage_scores(K[:0]), None),
    ("empty keys lewis", lambda: levattn.lewis_weights(K[:0], 1.0), None),
    ("empty keys universal", lambda: levattn.universal_set(K[:0], eps=0.1), None),
    ("zero width keys", lambda: levattn.leverage_scores(K[:, :0]), None),
    ("scores 1-D", lambda: levattn.leverage_scores(K[0]), None),
    ("scores 4-D", lambda: levattn.leverage_scores(K[None, None]), None),
    ("heavy d mismatch", lambda: levattn.heavy_entries(Q[:, :3], K, 0.1), None),
    ("heavy head layout", lambda: levattn.heavy_entries(Q[None], K, 0.1), None),
    ("merge shapes", lambda: levattn.merge_attention(Q, np.zeros(5), Q[:4], np.zeros(4)), None),
    ("merge lse shape", lambda: levattn.merge_attention(Q, np.zeros(4), Q, np.zeros(5)), None),
    ("merge bnhd 2-D", lambda: levattn.merge_attention(Q, np.zeros(5), Q, np.zeros(5), layout="bnhd"), None),
    # parameters out of range
    ("lev eps 0", attn(method="lev", eps=0.0), "eps"),
    ("lev eps > 1", attn(method="lev", eps=1.5), "eps"),
    ("lev eps NaN", attn(method="lev", eps=float("nan")), "eps"),
    ("lev top_k > n", attn(method="lev", top_k=8), None),
    ("lev top_k 0", attn(method="lev", top_k=0), "top_k"),
    ("lev top_k float", attn(method="lev", top_k=2.5), "top_k"),
    ("lev both", attn(method="lev", top_k=2, eps=0.1), None),
    ("lev neither", attn(method="lev"), None),
    ("lev sinks negative", attn(method="lev", top_k=2, sinks=-1), "sinks"),
    ("lev window without causal", attn(method="lev", top_k=2, window=2), None),
    ("lev return_lse", attn(method="lev", top_k=2, return_lse=True), None),
    ("softmax missing mass", attn(method="lev", top_k=2, return_missing_mass=True), None),
    ("lev pow:3 causal", attn(method="lev", top_k=2, f="pow:3", is_causal=True), None),
    ("lev delta 0", attn(method="lev", top_k=2, f="pow:3", delta=0.0), "delta"),
    ("lev negative ridge", attn(method="lev", top_k=2, ridge=-1.0), None),
    ("lev rcond 1", attn(method="lev", top_k=2, rcond=1.0), "rcond"),
    ("exact with top_k", attn(top_k=2), None),
    ("universal eps 0", lambda: levattn.universal_set(K, eps=0.0), "eps"),
    ("universal eps > 1", lambda: levattn.universal_set(K, eps=2.0), "eps"),
    ("universal top_k > n", lambda: levattn.universal_set(K, top_k=8), "top_k"),
    ("universal top_k 0", lambda: levattn.universal_set(K, top_k=0), "top_k"),
    ("universal both", lambda: levattn.universal_set(K, eps=0.1, top_k=2), None),
    ("universal neither", lambda: levattn.universal_set(K), None),
    ("heavy eps 0", lambda: levattn.heavy_entries(Q, K, 0.0), "eps"),
    ("heavy eps > 1", lambda: levattn.heavy_entries(Q, K, 1.5), "eps"),
    ("heavy p 0", lambda: levattn.heavy_entries(Q, K, 0.1, p=0.0), None),
    ("scores p negative", lambda: levattn.leverage_scores(K, p=-1.0), None),
    ("scores approx 0", lambda: levattn.leverage_scores(K, approx=0.0), None),
    ("scores approx with p", lambda: levattn.leverage_scores(K, approx=0.5, p=3.0), None),
    ("scores ridge negative", lambda: levattn.leverage_scores(K, ridge=-1.0), None),
    ("scores failure 1", lambda: levattn.leverage_scores(K, approx=0.5, failure=1.0), None),
    ("scores seed negative", lambda: levattn.leverage_scores(K, seed=-1), "seed"),
    ("lewis p 0", lambda: levattn.lewis_weights(K, 0.0), None),
    ("lewis p inf", lambda: levattn.lewis_weights(K, float("inf")), None),
    ("lewis tolerance 0", lambda: levattn.lewis_weights(K, 1.0, tolerance=0.0), None),
    ("lewis max_iterations 0", lambda: levattn.lewis_weights(K, 1.0, max_iterations=0), None),
    ("scale 0", attn(scale=0.0), "scale"),
    ("scale negative", attn(scale=-1.0), "scale"),
    ("scale NaN", attn(scale=float("nan")), "scale"),
    ("scale string", attn(scale="1"), "scale"),
    ("threads 0", attn(threads=0), "threads"),
    ("seed beyond uint64", lambda: levattn.leverage_scores(K, approx=0.5, seed=2**70), "seed"),
    ("sinks beyond int64", lambda: levattn.attention(Q, K, V, method="lev", top_k=2, sinks=2**70), "sinks"),
    ("keys with no heads", lambda: levattn.lewis_weights(np.zeros((0, 8, 4), np.float32), 1.0), "no heads"),
    ("scores with no heads", lambda: levattn.leverage_scores(np.zeros((0, 8, 4), np.float32)), "no heads"),
    ("selector threads 0", lambda: levattn.StreamSelector(4, eps=0.1, threads=0), "threads"),
    ("cache threads negative", lambda: levattn.KVCache(4, 3, threads=-1), "threads"),
    ("threads negative", lambda: levattn.leverage_scores(K, threads=-2), "threads"),
    ("threads float", attn(threads=1.5), "threads"),
    ("threads bool", attn(threads=True), "threads"),
    # strings
    ("bad method", attn(method="fast"), "method"),
    ("bad layout", attn(layout="nhd"), "layout"),
    ("bad f", attn(f="relu"), None),
    ("bad f power", attn(f="pow:"), None),
    ("f pow:0", attn(f="pow:0"), None),
    ("f pow:-1", attn(f="pow:-1"), None),
    ("f pow:nan", attn(f="pow:nan"), None),
    ("f not a string", attn(f=2), None),
    ("merge bad layout", lambda: levattn.merge_attention(Q, np.zeros(5), Q, np.zeros(5), layout="x"), "layout"),
    # dtypes and kinds of objects
    ("object array", lambda: levattn.attention(Q.astype(object), K, V), None),
    ("int array", lambda: levattn.attention(Q.astype(np.int64), K, V), None),
    ("bool array", lambda: levattn.leverage_scores(K > 0), None),
    ("complex array", lambda: levattn.leverage_scores(K.astype(np.complex64)), None),
    ("list", lambda: levattn.attention(Q.tolist(), K, V), None),
    ("None q", lambda: levattn.attention(None, K, V), None),
    ("None k", lambda: levattn.leverage_scores(None), None),
    ("string", lambda: levattn.leverage_scores("keys"), None),
    ("int tensor", lambda: levattn.attention(torch.ones(5, 4, dtype=torch.int32), K, V), None),
    ("requires_grad q", lambda: levattn.attention(torch.from_numpy(Q).requires_grad_(True), torch.from_numpy(K),
                                                  torch.from_numpy(V)), "grad"),
    ("requires_grad k", lambda: levattn.leverage_scores(grad_tensor()), "grad"),
    ("meta tensor", lambda: levattn.leverage_scores(torch.empty(3, 4, device="meta")), "device"),
    ("meta tensor attention", lambda: levattn.attention(torch.empty(3, 4, device="meta"), K, V), "device"),
    ("sparse tensor", lambda: levattn.leverage_scores(torch.from_numpy(K).to_sparse()), None),
    ("mixed torch and numpy", lambda: levattn.attention(Q, torch.from_numpy(K).requires_grad_(True), V), "grad"),
    # StreamSelector
    ("selector no mode", selector(), None),
    ("selector both modes", selector(eps=0.1, budget=3), None),
    ("selector eps 0", selector(eps=0.0), "eps"),
    ("selector eps > 1", selector(eps=1.5), "eps"),
    ("selector budget 0", selector(budget=0), "budget"),
    ("selector d 0", lambda: levattn.StreamSelector(0, eps=0.1), None),
    ("selector rcond 0", selector(eps=0.1, rcond=0.0), "rcond"),
    ("selector first_row negative", selector(eps=0.1, first_row=-1), "first_row"),
    ("selector value_dim negative", selector(eps=0.1, value_dim=-1), "value_dim"),
    ("selector pending negative", selector(eps=0.1, pending_rows=-1), "pending_rows"),
    ("selector push wrong d", stream_push(K[:, :3]), None),
    ("selector push 1-D", stream_push(K[0]), None),
    ("selector push values without value_dim", stream_push(K, V), None),
    ("selector push missing values", stream_push(K, None, value_dim=3), "(7, 3), got (0, 0)"),
    ("selector push values rows", stream_push(K, V[:5], value_dim=3), "(7, 3), got (5, 3)"),
    ("selector push values NaN", stream_push(K, with_value(V, (2, 2), np.nan), value_dim=3), "row 9"),
    ("selector merge non-selector", lambda: levattn.StreamSelector(4, eps=0.1).merge(object()), None),
    ("selector merge itself", lambda: (lambda s: s.merge(s))(levattn.StreamSelector(4, eps=0.1)), None),
    ("selector merge other d", lambda: levattn.StreamSelector(4, eps=0.1).merge(levattn.StreamSelector(3, eps=0.1)),
     None),
    ("selector merge other mode",
     lambda: levattn.StreamSelector(4, eps=0.1).merge(levattn.StreamSelector(4, budget=3)), None),
    ("selector heavy eps below", lambda: (lambda s: (s.push(K), s.heavy(Q, 0.05)))(levattn.StreamSelector(4, eps=0.1)),
     None),
    ("selector heavy wrong d",
     lambda: (lambda s: (s.push(K), s.heavy(Q[:, :3], 0.5)))(levattn.StreamSelector(4, eps=0.1)), None),
    # KVCache
    ("cache policy", cache(policy="lru"), "policy"),
    ("cache f", cache(f="pow:3"), None),
    ("cache f junk", cache(f="exp"), None),
    ("cache budget 0", cache(budget=0), "budget"),
    ("cache eps > 1", cache(eps=1.5), "eps"),
    ("cache eps 0", cache(eps=0.0), "eps"),
    ("cache sinks >= budget", cache(policy="window", budget=4, sinks=4), "sinks"),
    ("cache sinks negative", cache(sinks=-1), "sinks"),
    ("cache refresh negative", cache(refresh=-1), "refresh"),
    ("cache scale 0", cache(scale=0.0), "scale"),
    ("cache d 0", cache(d=0), None),
    ("cache d_v 0", cache(d_v=0), None),
    ("cache policy not str", cache(policy=None), None),
    ("cache append wrong d", cache_call("append", K[0, :3], V[0]), None),
    ("cache append wrong d_v", cache_call("append", K[0], V[0, :2]), None),
    ("cache append rows differ", cache_call("append", K[:3], V[:2]), None),
    ("cache append 3-D", cache_call("append", K[None], V[None]), None),
    ("cache attend wrong d", cache_call("attend", Q[0, :3]), None),
    ("cache attend None", cache_call("attend", None), None),
]


def test_every_bad_call_raises_input_error_and_the_process_stays_healthy():
    """Each bad call raises levattn.InputError (a ValueError and a levattn.Error; ComputeError would be a
    RuntimeError), with the named fragment in its message where listed; afterwards attention and leverage scores
    still equal their references."""
    assert issubclass(levattn.InputError, ValueError) and issubclass(levattn.InputError, levattn.Error)
    assert issubclass(levattn.ComputeError, RuntimeError) and issubclass(levattn.ComputeError, levattn.Error)
    failures = []
    for name, call, fragment in BAD_CALLS:
        try:
            call()
        except levattn.InputError as e:
            if not isinstance(e, ValueError) or not isinstance(e, levattn.Error):
                failures.append(f"{name}: InputError is not a ValueError/Error")
            elif fragment is not None and fragment not in str(e):
                failures.append(f"{name}: message {str(e)!r} lacks {fragment!r}")
        except Exception as e:  # noqa: BLE001 — the point is to catch anything else
            failures.append(f"{name}: raised {type(e).__module__}.{type(e).__name__}: {e}")
        else:
            failures.append(f"{name}: no exception")
    assert not failures, "\n".join(failures)
    out = levattn.attention(Q, K, V)
    ref, _, rb = attention_ref(Q, K, V)
    assert np.all(np.abs(out - ref) <= (1e-5 + 2 * rb[:, None]) * np.max(np.abs(V)))
    s = levattn.leverage_scores(K)
    assert np.max(np.abs(s - leverage_ref(K)) / leverage_ref(K)) <= 1e-4


def test_unconverged_lewis_weights_raise_compute_error():
    """A Lewis iteration cut off at one evaluation raises levattn.ComputeError (a RuntimeError) naming the
    residual, and the next call still matches the reference."""
    keys = np.random.default_rng(1).standard_t(2, size=(200, 6)).astype(np.float32)
    try:
        levattn.lewis_weights(keys, 0.5, max_iterations=1)
    except levattn.ComputeError as e:
        assert isinstance(e, RuntimeError) and "residual" in str(e)
    else:
        raise AssertionError("no ComputeError")
    assert np.max(np.abs(levattn.leverage_scores(K) / leverage_ref(K) - 1)) <= 1e-4
