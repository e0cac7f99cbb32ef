"""levattn.torch: the autograd function against torch autograd of a float64 reference written here
row by row, and LevSelfAttention inside a stock nn.TransformerEncoderLayer."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import levattn  # noqa: E402
import levattn.torch as lt  # noqa: E402


def reference(q, k, v, *, f="softmax", scale=None, causal=False, kept=None, window=0):
    """Attention of (B, Hq, nq, d) queries over (B, Hkv, nk, d) keys, float64, one row at a time.
    kept[b][kh]: the key indices a LevAttention head keeps (plus, causal, the `window` latest)."""
    q, k, v = q.double(), k.double(), v.double()
    B, Hq, nq, d = q.shape
    Hkv, nk = k.shape[1], k.shape[2]
    power = f != "softmax"
    p = float(f[4:]) if power else 0.0
    c = scale if scale is not None else (1.0 if power else 1.0 / math.sqrt(d))
    heads = []
    for b in range(B):
        per_head = []
        for h in range(Hq):
            kh = h // (Hq // Hkv)
            rows = []
            for i in range(nq):
                last = i + nk - nq if causal else nk - 1
                visible = list(range(0, last + 1))
                use = visible
                if kept is not None:
                    chosen = set(int(j) for j in kept[b][kh])
                    use = [j for j in visible if j in chosen or (window > 0 and j > last - window)]
                s = c * (k[b, kh, use] @ q[b, h, i])
                if not power:
                    w = torch.softmax(s, 0)
                else:
                    total = (c * (k[b, kh, visible] @ q[b, h, i])).abs().pow(p).sum()
                    w = s.abs().pow(p) / total
                rows.append(w @ v[b, kh, use])
            per_head.append(torch.stack(rows))
        heads.append(torch.stack(per_head))
    return torch.stack(heads)


def inputs(B, Hq, Hkv, nq, nk, d, dv, seed, kind="random"):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, nq, d, generator=g)
    k = torch.randn(B, Hkv, nk, d, generator=g)
    v = torch.randn(B, Hkv, nk, dv, generator=g)
    if kind == "large_logits":
        q = q * 8.0
    if kind == "duplicate_keys":
        k[:, :, 1::2] = k[:, :, 0:-1:2][:, :, : k[:, :, 1::2].shape[2]]
    return [x.requires_grad_() for x in (q, k, v)]


def grads(out, tensors, upstream):
    return torch.autograd.grad(out, tensors, upstream)


def assert_close(actual, expected, rtol):
    actual, expected = actual.double(), expected.double()
    scale = expected.abs().max().item()
    err = (actual - expected).abs().max().item()
    assert err <= rtol * max(scale, 1e-30), f"max error {err} against scale {scale}"


def check(q, k, v, rtol=1e-4, **kwargs):
    """levattn.torch.attention and the reference give the same output and dq, dk, dv."""
    out = lt.attention(q, k, v, **kwargs)
    kept = None
    if kwargs.get("method") == "lev":
        _, kept = levattn.attention(q.detach(), k.detach(), v.detach(), return_kept=True, **kwargs)
    ref = reference(q, k, v, f=kwargs.get("f", "softmax"), scale=kwargs.get("scale"),
                    causal=kwargs.get("is_causal", False), kept=kept, window=kwargs.get("window", 0))
    assert_close(out, ref, 1e-5)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    for got, want in zip(grads(out, (q, k, v), upstream), grads(ref, (q, k, v), upstream.double())):
        assert got.dtype == q.dtype
        assert_close(got, want, rtol)


@pytest.mark.parametrize("f", ["softmax", "pow:2", "pow:3"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1, 13, 13), (2, 4, 2, 7, 17), (1, 2, 2, 33, 33)])
def test_exact_output_and_gradients_match_float64_reference(f, causal, shape):
    B, Hq, Hkv, nq, nk = shape
    q, k, v = inputs(B, Hq, Hkv, nq, nk, 8, 5, seed=nq * 31 + nk)
    check(q, k, v, f=f, is_causal=causal)


@pytest.mark.parametrize("kind", ["large_logits", "duplicate_keys"])
def test_exact_gradients_on_adversarial_inputs_match_reference(kind):
    q, k, v = inputs(1, 2, 1, 11, 19, 8, 4, seed=3, kind=kind)
    check(q, k, v)
    check(q, k, v, f="pow:2", is_causal=True)


@pytest.mark.parametrize("f", ["softmax", "pow:2"])
@pytest.mark.parametrize("select", [dict(top_k=6), dict(top_k=4, sinks=2), dict(eps=0.3)])
def test_lev_gradients_through_kept_keys_match_reference(f, select):
    q, k, v = inputs(2, 2, 1, 9, 21, 6, 3, seed=11)
    check(q, k, v, method="lev", f=f, **select)


@pytest.mark.parametrize("f", ["softmax", "pow:2"])
@pytest.mark.parametrize("shape", [(1, 2, 2, 15, 15), (2, 4, 2, 9, 21), (1, 2, 1, 20, 12)])
@pytest.mark.parametrize("window", [0, 3])
def test_causal_lev_gradients_match_reference(f, shape, window):
    q, k, v = inputs(*shape, 6, 3, seed=5)
    check(q, k, v, method="lev", f=f, top_k=4, sinks=1, is_causal=True, window=window)


def test_scale_and_bnhd_layout_gradients_match_reference():
    q, k, v = inputs(2, 3, 3, 10, 12, 4, 4, seed=9)
    qt, kt, vt = (x.detach().transpose(1, 2).contiguous().requires_grad_() for x in (q, k, v))
    out = lt.attention(qt, kt, vt, layout="bnhd", scale=0.3)
    ref = reference(q, k, v, scale=0.3)
    assert_close(out.transpose(1, 2), ref, 1e-5)
    upstream = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    got = grads(out, (qt, kt, vt), upstream.transpose(1, 2))
    want = grads(ref, (q, k, v), upstream.double())
    for g, w in zip(got, want):
        assert_close(g.transpose(1, 2), w, 1e-4)


@pytest.mark.parametrize("ndim", [2, 3])
def test_unbatched_shapes_gradients_match_reference(ndim):
    q, k, v = inputs(1, 1, 1, 6, 9, 4, 2, seed=ndim)
    lead = (0, 0) if ndim == 2 else (0,)
    q2, k2, v2 = (x.detach()[lead].clone().requires_grad_() for x in (q, k, v))
    out = lt.attention(q2, k2, v2, f="pow:2")
    ref = reference(q, k, v, f="pow:2")[lead]
    assert out.shape == ref.shape
    assert_close(out, ref, 1e-5)
    up = torch.ones(ref.shape)
    for g, w in zip(grads(out, (q2, k2, v2), up), grads(ref, (q, k, v), up.double())):
        assert_close(g, w[lead], 1e-4)


def test_bfloat16_inputs_get_bfloat16_gradients():
    q, k, v = (x.detach().bfloat16().requires_grad_() for x in inputs(1, 1, 1, 5, 7, 4, 3, seed=2))
    out = lt.attention(q, k, v)
    assert_close(out, reference(q, k, v), 1e-5)
    gq, gk, gv = grads(out, (q, k, v), torch.ones(out.shape))
    assert gq.dtype == gk.dtype == gv.dtype == torch.bfloat16


def test_gradient_only_for_inputs_that_require_it():
    q, k, v = inputs(1, 1, 1, 5, 7, 4, 3, seed=4)
    k.requires_grad_(False)
    out = lt.attention(q, k, v)
    gq, gv = torch.autograd.grad(out.sum(), (q, v))
    rq, rv = torch.autograd.grad(reference(q, k, v).sum(), (q, v))
    assert_close(gq, rq, 1e-4)
    assert_close(gv, rv, 1e-4)


def test_without_grad_equals_levattn_attention():
    q, k, v = (x.detach() for x in inputs(1, 2, 1, 8, 8, 4, 4, seed=6))
    assert torch.equal(lt.attention(q, k, v, is_causal=True), levattn.attention(q, k, v, is_causal=True))


def test_lev_pow3_with_grad_raises_input_error():
    q, k, v = inputs(1, 1, 1, 6, 12, 4, 3, seed=8)
    with pytest.raises(levattn.InputError):
        lt.attention(q, k, v, method="lev", top_k=4, f="pow:3")


def test_non_tensor_input_raises_input_error():
    with pytest.raises(levattn.InputError):
        lt.attention(np.zeros((3, 4), np.float32), torch.zeros(3, 4), torch.zeros(3, 4))


def stock_layer(seed, batch_first=True):
    torch.manual_seed(seed)
    return torch.nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=batch_first)


@pytest.mark.parametrize("batch_first", [True, False])
def test_lev_self_attention_with_every_key_gives_stock_layer_outputs(batch_first):
    layer = stock_layer(0, batch_first)
    x = torch.randn(3, 20, 32) if batch_first else torch.randn(20, 3, 32)
    expected = layer(x).detach()
    with torch.no_grad():
        layer.eval()
        expected_eval = layer(x)
    ours = lt.LevSelfAttention(32, 4, top_k=20, batch_first=batch_first)
    ours.load_state_dict(layer.self_attn.state_dict())
    layer.self_attn = ours
    layer.train()
    assert (layer(x) - expected).abs().max().item() <= 1e-5
    with torch.no_grad():
        layer.eval()
        assert (layer(x) - expected_eval).abs().max().item() <= 1e-5


def test_lev_self_attention_unbatched_input_gives_multihead_attention_outputs():
    torch.manual_seed(1)
    mha = torch.nn.MultiheadAttention(16, 2, batch_first=True)
    ours = lt.LevSelfAttention(16, 2, top_k=100)
    ours.load_state_dict(mha.state_dict())
    x = torch.randn(9, 16)
    assert (ours(x, x, x)[0] - mha(x, x, x, need_weights=False)[0]).abs().max().item() <= 1e-5


def test_lev_self_attention_refuses_masks_and_dropout():
    attn = lt.LevSelfAttention(16, 2, top_k=4)
    x = torch.randn(2, 8, 16)
    with pytest.raises(levattn.InputError):
        attn(x, x, x, attn_mask=torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(levattn.InputError):
        attn(x, x, x, key_padding_mask=torch.ones(2, 8, dtype=torch.bool))
    with pytest.raises(levattn.InputError):
        lt.LevSelfAttention(16, 2, dropout=0.1)
    with pytest.raises(levattn.InputError):
        lt.LevSelfAttention(15, 2)


def test_stock_encoder_with_lev_self_attention_trains():
    """A stock encoder whose layer keeps 6 of 24 keys per head learns to copy, to every position,
    the one input row drawn 4 times larger than the others (a key of high leverage): the loss
    falls by at least a third in 150 Adam steps (mean of the last ten against the first ten)."""
    torch.manual_seed(0)
    n, e = 24, 16
    layer = torch.nn.TransformerEncoderLayer(e, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
    layer.self_attn = lt.LevSelfAttention(e, 2, top_k=6)
    model = torch.nn.Sequential(torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False),
                                torch.nn.Linear(e, e))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)

    def batch():
        x = torch.randn(32, n, e, generator=g)
        where = torch.randint(0, n, (32,), generator=g)
        signal = torch.randn(32, e, generator=g)
        x[torch.arange(32), where] = 4.0 * signal
        return x, signal[:, None, :].expand(-1, n, -1)

    losses = []
    for _ in range(150):
        x, target = batch()
        loss = torch.nn.functional.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) <= (2.0 / 3.0) * np.mean(losses[:10])
