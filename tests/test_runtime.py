"""Where torch runs: its intra-op threads, set for the work at hand."""

import pytest
import torch

from tapcheck.runtime import torch_threads


def test_torch_threads_holds_a_block_to_fewer_threads_and_gives_them_back():
    """A clip's features on one thread (9.5 s on two against 4.6 s for judge of 400 clips,
    docs/speed.md), the network's batches on all of them again after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with torch_threads(4):  # never more than there were
            assert torch.get_num_threads() == 2
        with pytest.raises(ValueError), torch_threads(1):
            raise ValueError("a bad clip")
        assert torch.get_num_threads() == 2  # given back however the block ends
    finally:
        torch.set_num_threads(before)
