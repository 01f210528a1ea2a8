"""Training-time changes to crops: pseudo-anomalies drawn per batch."""

from __future__ import annotations

import numpy as np
import torch

from tapcheck.augment import PSEUDO_ANOMALIES, PseudoAnomalyBatches


def _batch(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.standard_normal((n, 1, 100, 120)).astype(np.float32))
    return x, torch.zeros(n, dtype=torch.long)


def test_per_batch_pseudo_anomalies_keep_the_materialised_class_balance():
    x, y = _batch(1000)
    hook = PseudoAnomalyBatches(first_class=1, normal_classes=[0])
    _, labels = hook(x, y, torch.Generator().manual_seed(0))
    shares = np.bincount(labels.numpy(), minlength=5) / len(labels)
    # the materialised set holds the normal class and each pseudo class in equal parts
    np.testing.assert_allclose(shares, 0.2, atol=0.04)


def test_each_drawn_crop_is_exactly_its_pseudo_anomaly_and_the_rest_are_untouched():
    x, y = _batch(64)
    original = x.clone()
    out, labels = PseudoAnomalyBatches(1, [0])(x, y, torch.Generator().manual_seed(3))
    assert torch.equal(x, original)  # the caller's batch (a view of the training set) is kept
    kept = labels == 0
    assert torch.equal(out[kept], original[kept])
    for j, transform in enumerate(PSEUDO_ANOMALIES.values(), start=1):
        pick = labels == j
        assert pick.any()
        np.testing.assert_allclose(out[pick].numpy(), transform(original[pick].numpy()),
                                   rtol=1e-6, atol=1e-6)


def test_only_normal_crops_become_pseudo_anomalies_and_draws_follow_the_generator():
    x, y = _batch(64)
    y[:32] = 1  # a defect class: never turned into a pseudo-anomaly
    hook = PseudoAnomalyBatches(first_class=2, normal_classes=[0])
    out, labels = hook(x, y, torch.Generator().manual_seed(5))
    assert torch.equal(out[:32], x[:32]) and (labels[:32] == 1).all()
    assert set(labels[32:].tolist()) <= {0, 2, 3, 4, 5}
    again, labels2 = hook(x, y, torch.Generator().manual_seed(5))
    assert torch.equal(again, out) and torch.equal(labels2, labels)  # same generator, same draws
