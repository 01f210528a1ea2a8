"""Class-balanced batches for triplet mining: P classes x K samples per batch.

Online triplet mining needs every anchor's positives in the same batch; a random batch of 32 from
10 classes may hold a class once. :class:`BalancedBatchSampler` draws P classes and K samples of
each. It is seeded and draws per epoch from its own generator, so training is repeatable
(pytorch-metric-learning's ``MPerClassSampler`` draws from NumPy's global state).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


class BalancedBatchSampler:
    """Batches of P classes x K sample indices.

    Within an epoch every class's samples are used in a shuffled order before any repeats; a class
    with fewer than K samples repeats some. Each batch takes the P classes used least so far (ties
    broken at random), so the P classes of a batch are distinct and all classes appear about
    equally often.

    Parameters
    ----------
    labels : array-like of int, shape (n,)
    p : int
        Classes per batch (at most the number of classes).
    k : int
        Samples per class per batch.
    seed : int

    Examples
    --------
    >>> sampler = BalancedBatchSampler([0, 0, 1, 1, 2, 2], p=2, k=2, seed=0)
    >>> [len(b) for b in sampler.batches(epoch=0)]
    [4]
    """

    def __init__(self, labels, *, p: int, k: int, seed: int = 0):
        self.labels = np.asarray(labels)
        self.classes = np.unique(self.labels)
        if k < 1 or p < 1:
            raise ValueError("p and k must be at least 1")
        self.p = min(p, len(self.classes))
        self.k = k
        self.seed = seed
        self.by_class = {c: np.flatnonzero(self.labels == c) for c in self.classes}

    def __len__(self) -> int:
        """Batches per epoch: enough to show each sample about once."""
        return max(1, len(self.labels) // (self.p * self.k))

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        """The batches of one epoch, each an index array of length P * K."""
        rng = np.random.default_rng([self.seed, epoch])
        queues = {c: rng.permutation(idx) for c, idx in self.by_class.items()}
        cursor = {c: 0 for c in self.classes}
        used = np.zeros(len(self.classes))
        for _ in range(len(self)):
            pick = np.argsort(used + rng.random(len(self.classes)) * 0.5, kind="stable")[: self.p]
            used[pick] += 1
            chosen = self.classes[pick]
            batch = []
            for c in chosen:
                for _ in range(self.k):
                    if cursor[c] == len(queues[c]):  # used up: reshuffle and go round again
                        queues[c], cursor[c] = rng.permutation(self.by_class[c]), 0
                    batch.append(queues[c][cursor[c]])
                    cursor[c] += 1
            yield np.array(batch)
