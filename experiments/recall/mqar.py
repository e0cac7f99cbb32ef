"""Multi-query associative recall (MQAR) sequences, split into a context and a query part.

The task of the Zoology study (Arora et al., 2023): a sequence shows key–value token pairs; later
the keys are asked again and the model must answer each with its value. Zoology's vocabulary
layout is kept: keys from the first half of the vocabulary, values from the second. For KV-cache
presses the sequence is cut in two:

    context  `context` tokens: `pairs` pairs (key, value) at random aligned slots (positions 2s,
             2s + 1), every other slot holding two noise tokens from a vocabulary of their own
             (tokens vocab .. vocab + noise − 1), so no noise token is a key or a value;
    queries  `queries` distinct keys of the context, each followed by its value: 2·queries tokens.

The targets are the values: the label at each query key's position is the token that follows it.
Every other label is IGNORE. The depth of a query is the position of its pair's value token in the
context divided by the context length (0: the start, near 1: the end).

Sequences are drawn from numpy's PCG64 seeded with (seed, index), so a batch is the same whatever
else was drawn before it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

IGNORE = -100


@dataclass(frozen=True)
class MQARConfig:
    vocab: int = 8192     # keys in [1, vocab/2), values in [vocab/2, vocab) (Zoology's layout)
    noise: int = 256      # noise tokens: vocab .. vocab + noise − 1
    context: int = 256    # context tokens, even
    pairs: int = 16       # key–value pairs in the context, ≤ context/2 and < vocab/2
    queries: int = 16     # keys asked again, ≤ pairs

    def __post_init__(self) -> None:
        if self.vocab < 4 or self.vocab % 2:
            raise ValueError(f"vocab must be an even number ≥ 4, got {self.vocab}")
        if self.noise < 1:
            raise ValueError(f"noise must be ≥ 1, got {self.noise}")
        if self.context < 2 or self.context % 2:
            raise ValueError(f"context must be an even number ≥ 2, got {self.context}")
        if not 1 <= self.pairs <= min(self.context // 2, self.vocab // 2 - 1):
            raise ValueError(f"pairs must lie in [1, min(context/2, vocab/2 - 1)], got {self.pairs}")
        if not 1 <= self.queries <= self.pairs:
            raise ValueError(f"queries must lie in [1, pairs], got {self.queries}")

    @property
    def length(self) -> int:
        return self.context + 2 * self.queries

    @property
    def tokens(self) -> int:
        """The size of the embedding table: keys, values and noise."""
        return self.vocab + self.noise


def batch(config: MQARConfig, seed: int, index: int, size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`size` sequences: tokens (size, length) int64, labels (size, length) int64 (IGNORE except at
    query keys), depth (size, queries) float64 of each query's value token in the context."""
    c = config
    rng = np.random.Generator(np.random.PCG64([seed, index]))
    slots = c.context // 2
    tokens = np.empty((size, c.length), dtype=np.int64)
    labels = np.full((size, c.length), IGNORE, dtype=np.int64)
    depth = np.empty((size, c.queries))
    half = c.vocab // 2
    for b in range(size):
        keys = rng.choice(np.arange(1, half), size=c.pairs, replace=False)
        values = rng.integers(half, c.vocab, size=c.pairs)
        seq = rng.integers(c.vocab, c.vocab + c.noise, size=c.length)
        where = np.sort(rng.choice(slots, size=c.pairs, replace=False))
        seq[2 * where], seq[2 * where + 1] = keys, values
        asked = rng.choice(c.pairs, size=c.queries, replace=False)
        q0 = c.context
        seq[q0::2], seq[q0 + 1::2] = keys[asked], values[asked]
        labels[b, q0::2] = values[asked]
        depth[b] = (2 * where[asked] + 1) / c.context
        tokens[b] = seq
    return tokens, labels, depth
