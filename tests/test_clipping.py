"""Clipping: flat tops at full scale counted (tapcheck.clipping)."""

import numpy as np


def test_clipped_samples_counts_flat_tops_only():
    from tapcheck.clipping import clipped_samples

    y = np.sin(np.arange(4410) * 0.05) * 0.95  # a clean peak near full scale: no flat top
    assert clipped_samples(y) == 0
    clipped = np.clip(y * 1.2, -0.99, 0.99)  # flat runs at +-0.99
    expected = int(np.sum(np.abs(clipped) == 0.99))
    assert clipped_samples(clipped) == expected > 0
    assert clipped_samples(np.clip(y * 1.2, -0.5, 0.5)) == 0  # flat, but far below full scale
    assert clipped_samples(np.zeros(100)) == 0  # digital silence is not clipping
    stereo = np.stack([y, clipped], axis=1)
    assert clipped_samples(stereo) == expected  # the worst channel counts
