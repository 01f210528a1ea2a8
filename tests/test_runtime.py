"""Where torch runs: its intra-op threads, set for the work at hand."""

import pytest
import torch
from threadpoolctl import threadpool_info

from tapcheck.runtime import limit_threads


def blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_limit_threads_holds_a_block_to_fewer_threads_and_gives_them_back():
    """A clip's features on one thread (9.5 s on two against 4.6 s for judge of 400 clips,
    docs/speed.md), the network's batches on all of them again after; numpy's BLAS too (its
    idle threads spun 5-14x longer than one thread's products, frame_power)."""
    before = torch.get_num_threads()
    blas_before = blas_threads()
    assert blas_before, "numpy's BLAS is not seen by threadpoolctl"
    torch.set_num_threads(2)
    try:
        with limit_threads(1):
            assert torch.get_num_threads() == 1
            assert blas_threads() == [1] * len(blas_before)
        assert torch.get_num_threads() == 2
        assert blas_threads() == blas_before
        with limit_threads(64):  # never more than there were
            assert torch.get_num_threads() == 2
            assert blas_threads() == blas_before
        with pytest.raises(ValueError), limit_threads(1):
            raise ValueError("a bad clip")
        assert torch.get_num_threads() == 2  # given back however the block ends
    finally:
        torch.set_num_threads(before)
