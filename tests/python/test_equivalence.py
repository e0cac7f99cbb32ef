"""Every entry point gives the same bits whatever form its inputs take: numpy or torch, float32 or a
dtype converted to float32 (compared with the explicitly rounded float32 values), non-contiguous or
negatively strided views (compared with contiguous copies), threads=1 or 2; and float32
C-contiguous inputs are read in place. Accuracy against references is tested elsewhere."""
import numpy as np
import pytest

import levattn
from levattn._arrays import as_float32

torch = pytest.importorskip("torch")


def data(rng, n=300, m=40, d=16, dv=8):
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return f(m, d), f(n, d), f(n, dv)


def flatten(result):
    """The arrays and numbers in a result (tuples, lists, NamedTuples, dicts) as a list of numpy arrays."""
    if isinstance(result, dict):
        return [np.asarray(v, dtype=object) if isinstance(v, str) else np.asarray(v)
                for k, v in sorted(result.items()) if not k.endswith("seconds")]
    if isinstance(result, (tuple, list)):
        return [x for r in result for x in flatten(r)]
    if result is None:
        return [np.asarray(np.nan)]
    if torch.is_tensor(result):
        return [result.numpy()]
    return [np.asarray(result)]


def same_bits(a, b):
    fa, fb = flatten(a), flatten(b)
    return len(fa) == len(fb) and all(x.shape == y.shape and (np.array_equal(x, y, equal_nan=x.dtype != object))
                                      for x, y in zip(fa, fb))


def stream_result(keys, queries, threads):
    s = levattn.StreamSelector(keys.shape[1], eps=0.05, pending_rows=64, threads=threads)
    s.push(keys[:100])
    s.push(keys[100:])
    return s.result(), s.heavy(queries, 0.05)


def cache_result(keys, values, queries, threads):
    c = levattn.KVCache(keys.shape[1], values.shape[1], budget=32, f="pow:2", threads=threads)
    c.append(keys, values)
    return c.attend(queries), c.positions(), c.missing_mass


# name → call(q, k, v, threads) for each entry point
CALLS = {
    "attention exact": lambda q, k, v, t: levattn.attention(q, k, v, is_causal=True, return_lse=True, threads=t),
    "attention lev": lambda q, k, v, t: levattn.attention(q, k, v, method="lev", top_k=20, f="pow:2", sinks=2,
                                                          return_kept=True, return_missing_mass=True, threads=t),
    "attention lev pow:3": lambda q, k, v, t: levattn.attention(q, k, v, method="lev", eps=0.02, f="pow:3",
                                                                return_missing_mass=True, threads=t),
    "leverage_scores": lambda q, k, v, t: levattn.leverage_scores(k, threads=t),
    "leverage_scores approx": lambda q, k, v, t: levattn.leverage_scores(k, approx=0.5, threads=t),
    "lewis_weights": lambda q, k, v, t: levattn.lewis_weights(k, 1.0, threads=t),
    "universal_set": lambda q, k, v, t: levattn.universal_set(k, eps=0.05, threads=t),
    "universal_set p=3": lambda q, k, v, t: levattn.universal_set(k, top_k=30, p=3.0, threads=t),
    "heavy_entries": lambda q, k, v, t: levattn.heavy_entries(q, k, 0.05, threads=t),
    "heavy_entries p=3": lambda q, k, v, t: levattn.heavy_entries(q, k, 0.05, p=3.0, threads=t),
    "StreamSelector": lambda q, k, v, t: stream_result(k, q, t),
    "KVCache": lambda q, k, v, t: cache_result(k, v, q, t),
}


@pytest.mark.parametrize("name", CALLS)
def test_threads_one_and_two_give_the_same_bits(name, rng):
    q, k, v = data(rng)
    assert same_bits(CALLS[name](q, k, v, 1), CALLS[name](q, k, v, 2))


@pytest.mark.parametrize("name", CALLS)
def test_torch_tensors_give_the_numpy_bits(name, rng):
    q, k, v = data(rng)
    expected = CALLS[name](q, k, v, None)
    got = CALLS[name](*(torch.from_numpy(x) for x in (q, k, v)), None)
    assert same_bits(got, expected)


@pytest.mark.parametrize("dtype", ["float64", "float16", "torch.bfloat16", "torch.float64"])
@pytest.mark.parametrize("name", CALLS)
def test_other_dtypes_give_the_bits_of_their_float32_rounding(name, dtype, rng):
    q, k, v = data(rng)
    if dtype.startswith("torch."):
        tdt = getattr(torch, dtype[6:])
        inputs = [torch.from_numpy(x).to(tdt) for x in (q, k, v)]
        rounded = [x.float().numpy() for x in inputs]
    else:
        inputs = [x.astype(dtype) for x in (q, k, v)]
        rounded = [x.astype(np.float32) for x in inputs]
    assert same_bits(CALLS[name](*inputs, None), CALLS[name](*rounded, None))


@pytest.mark.parametrize("view", ["every other row", "transposed twice", "reversed rows"])
@pytest.mark.parametrize("name", CALLS)
def test_strided_views_give_the_bits_of_contiguous_copies(name, view, rng):
    q, k, v = data(rng, n=600, m=80)
    if view == "every other row":
        views = [x[::2] for x in (q, k, v)]
    elif view == "transposed twice":
        views = [np.asfortranarray(x) for x in (q, k, v)]
    else:
        views = [x[::-1] for x in (q, k, v)]
    assert not views[1].flags.c_contiguous
    assert same_bits(CALLS[name](*views, None), CALLS[name](*(np.ascontiguousarray(x) for x in views), None))


def test_float32_c_contiguous_inputs_are_read_in_place():
    a = np.ones((5, 3), np.float32)
    assert as_float32(a, "a") is a
    t = torch.ones(5, 3)
    assert as_float32(t, "t").__array_interface__["data"][0] == t.data_ptr()
    assert not np.shares_memory(as_float32(a[::-1], "a"), a)  # a reversed view is copied


def test_a_lazily_negated_tensor_is_converted():
    z = torch.randn(7, 4, dtype=torch.cfloat, generator=torch.Generator().manual_seed(0))
    imag = z.conj().imag  # float32 with the negative bit set
    assert imag.is_neg()
    np.testing.assert_array_equal(levattn.leverage_scores(imag).numpy(),
                                  levattn.leverage_scores(imag.resolve_neg().clone()).numpy())


def test_more_threads_than_cores_give_the_same_bits(rng):
    q, k, v = data(rng)
    assert same_bits(levattn.attention(q, k, v, threads=10**6), levattn.attention(q, k, v, threads=1))
