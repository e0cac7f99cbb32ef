"""The GIL is released while the core computes, concurrent calls do not disturb each other, and repeated calls
do not leak memory. Functional checks only: no timing thresholds."""
import gc
import sys
import threading
import time

import numpy as np
import pytest

import levattn
from inputs import gaussian
from reference import attention_ref, leverage_ref, threshold_set_agrees


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def _long_calls():
    rng = np.random.default_rng(11)
    Q, K, V = gaussian(rng, 8192, 64), gaussian(rng, 8192, 64), gaussian(rng, 8192, 64)
    big = gaussian(rng, 400000, 32)
    return {
        "attention": lambda: levattn.attention(Q, K, V, threads=1),
        "leverage_scores": lambda: levattn.leverage_scores(big, threads=1),
        "stream_push": lambda: levattn.StreamSelector(32, eps=0.01).push(big),
    }


@pytest.mark.parametrize("name", ["attention", "leverage_scores", "stream_push"])
def test_gil_is_released_during_a_long_call(name):
    """While one thread runs a long levattn call, the main thread's pure-Python counter advances (≥ 1000 steps
    between the worker's reads just before and just after the call). The switch interval is set huge, so a
    call that held the GIL would let the counter advance 0 steps in that span."""
    call = _long_calls()[name]
    state = {"count": 0, "before": None, "after": None, "error": None}
    done = threading.Event()

    def worker():
        try:
            state["before"] = state["count"]
            call()
            state["after"] = state["count"]
        except BaseException as e:  # noqa: BLE001 — reported below
            state["error"] = e
        finally:
            done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)  # no forced GIL hand-over: only blocking or releasing calls yield it
    try:
        t = threading.Thread(target=worker)
        t.start()
        while not done.is_set():
            state["count"] += 1
            if state["count"] % 256 == 0:
                time.sleep(0)  # let the worker take the GIL when it wants it
        t.join()
    finally:
        sys.setswitchinterval(old)
    assert state["error"] is None, state["error"]
    assert state["after"] - state["before"] >= 1000


def test_two_threads_at_once_give_the_sequential_bits():
    """Two Python threads calling attention (threads=1) on different inputs at the same time get results
    bit-equal to the same calls made one after the other, which equal the reference."""
    rng = np.random.default_rng(12)
    inputs = [(gaussian(rng, 300, 32), gaussian(rng, 700, 32), gaussian(rng, 700, 16)) for _ in range(2)]
    kws = [dict(f="softmax", is_causal=True), dict(f="pow:2")]
    sequential = [levattn.attention(*x, threads=1, **kw) for x, kw in zip(inputs, kws)]
    for (Q, K, V), kw, out in zip(inputs, kws, sequential):
        ref, _, rb = attention_ref(Q, K, V, kw["f"], causal=kw.get("is_causal", False))
        assert np.all(np.abs(out - ref) <= (1e-5 + 2 * rb[:, None]) * np.max(np.abs(V)))
    results = [[None] * 20 for _ in range(2)]
    barrier = threading.Barrier(2)

    def worker(i):
        barrier.wait()
        for r in range(20):
            results[i][r] = levattn.attention(*inputs[i], threads=1, **kws[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert all(np.array_equal(r, sequential[i]) for r in results[i])


def test_two_threads_sharing_a_stream_selector_and_cache_keep_the_reference_set():
    """Two threads pushing blocks into one StreamSelector at once (in an order nobody records) keep
    exactly the keys whose reference leverage score over all the keys is ≥ eps (keys within 1e-6
    of eps aside), with those scores to 1e-6; two threads appending to one KVCache append every key
    and keep its budget."""
    rng = np.random.default_rng(13)
    blocks = [gaussian(rng, 50, 8) for _ in range(40)]
    sel = levattn.StreamSelector(8, eps=0.05, pending_rows=64)
    cache = levattn.KVCache(8, 2, policy="window", budget=16, sinks=2)

    def worker(i):
        for b in range(i, 40, 2):
            sel.push(blocks[b])
            cache.append(blocks[b], blocks[b][:, :2])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    K = np.vstack(blocks)
    tau = leverage_ref(K)  # order-free: the keys' leverage scores do not depend on the push order
    score_of = {row.tobytes(): t for row, t in zip(K, tau)}
    r = sel.result()
    assert r.count == 2000
    kept = {row.tobytes() for row in r.keys}
    for row, t in score_of.items():
        if t >= 0.05 * (1 + 1e-6):
            assert row in kept
        if t < 0.05 * (1 - 1e-6):
            assert row not in kept
    for row, s in zip(r.keys, r.scores):
        assert abs(s - score_of[row.tobytes()]) <= 1e-6 * score_of[row.tobytes()]
    assert cache.appended == 2000 and cache.size == 16


def _grows_less_than(call, kib, warmup, repeats):
    for _ in range(warmup):
        call()
    gc.collect()
    before = rss_kib()
    for _ in range(repeats):
        call()
    gc.collect()
    grown = rss_kib() - before
    assert grown < kib, f"RSS grew by {grown} KiB over {repeats} calls"


def test_repeated_attention_calls_do_not_grow_memory():
    """10,000 small attention calls (exact and lev, with extras) after 1,000 warm-up calls grow RSS by < 5 MB."""
    rng = np.random.default_rng(14)
    Q, K, V = gaussian(rng, 2, 20, 16), gaussian(rng, 2, 40, 16), gaussian(rng, 2, 40, 8)
    i = [0]

    def call():
        i[0] += 1
        if i[0] % 2:
            levattn.attention(Q, K, V, return_lse=True, is_causal=True, threads=1)
        else:
            levattn.attention(Q, K, V, method="lev", f="pow:2", top_k=10, return_kept=True, return_missing_mass=True,
                              threads=1)

    _grows_less_than(call, 5 * 1024, 1000, 10000)


def test_repeated_score_calls_do_not_grow_memory():
    """10,000 small leverage_scores / universal_set / heavy_entries calls after 1,000 warm-up calls grow RSS by
    < 5 MB."""
    rng = np.random.default_rng(15)
    K, Q = gaussian(rng, 60, 8), gaussian(rng, 10, 8)
    i = [0]

    def call():
        i[0] += 1
        [lambda: levattn.leverage_scores(K, return_info=True), lambda: levattn.universal_set(K, eps=0.1),
         lambda: levattn.universal_set(K, top_k=5), lambda: levattn.heavy_entries(Q, K, 0.1)][i[0] % 4]()

    _grows_less_than(call, 5 * 1024, 1000, 10000)


def test_stream_objects_created_and_dropped_do_not_grow_memory():
    """KVCache and StreamSelector objects created, used and dropped 3,000 times after 500 warm-up rounds grow
    RSS by < 5 MB."""
    rng = np.random.default_rng(16)
    K, V = gaussian(rng, 40, 8), gaussian(rng, 40, 4)

    def call():
        c = levattn.KVCache(8, 4, policy="leverage", budget=16, f="pow:2")
        c.append(K, V)
        c.attend(K[:3])
        s = levattn.StreamSelector(8, eps=0.1, value_dim=4)
        s.push(K, V)
        s.result()
        s.heavy(K[:2], 0.2)

    _grows_less_than(call, 5 * 1024, 500, 3000)
