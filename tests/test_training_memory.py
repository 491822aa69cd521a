"""Training data held as uint8 and made float per batch, ``expand`` made on the fly: the same
batches as the float tensors of before, at a fraction of the memory."""

import numpy as np
import pytest
import torch
from mesti.train.data import EXPANSION, ClipImages, expand, to_tensor
from mesti.train.folds import fits


@pytest.mark.parametrize("store_size, size", [(20, 16), (24, 24)])
def test_batches_equal_the_float_tensors_of_before(store_size: int, size: int) -> None:
    rng = np.random.default_rng(store_size)
    images = rng.integers(0, 256, (7, store_size, store_size, 3), dtype=np.uint8)
    rows = np.array([1, 3, 4, 6])
    before = torch.cat([to_tensor(images, size), expand(to_tensor(images, size)[rows])])
    lazy = ClipImages(images, size).expanded(rows)
    assert len(lazy) == len(before) == 7 + EXPANSION * 4 and lazy.shape == before.shape
    order = rng.permutation(len(before))
    for start in range(0, len(order), 5):  # batches mixing originals and every copy
        index = order[start:start + 5]
        assert torch.equal(lazy[index], before[index])
    assert torch.equal(lazy[torch.tensor([3, 40])], before[[3, 40]])
    assert torch.equal(lazy[-1], before[-1])
    plain = ClipImages(images, size)
    assert torch.equal(plain[np.arange(7)], to_tensor(images, size))
    assert plain.nbytes == images.nbytes == before[:7].numel() * 4 * (store_size / size) ** 2 / 4


def test_a_training_set_stays_on_the_device_only_when_it_fits() -> None:
    assert fits(100, 1000, 0.25) and not fits(300, 1000, 0.25)
    assert fits(0, 0, 0.25) and not fits(1, 0, 0.25)
