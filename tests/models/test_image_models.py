"""The CNN sizes itself from the image: one block per halving until a few pixels are left."""

from __future__ import annotations

import pytest
import torch

from lightyard.errors import ConfigError
from lightyard.models.cnn import ConvBlock, SimpleCNN, depth_for


@pytest.mark.parametrize(("size", "blocks"), [(8, 2), (28, 4), (32, 4), (64, 5), (224, 6)])
def test_depth_follows_the_image_size(size, blocks):
    assert depth_for(size) == blocks
    model = SimpleCNN(in_channels=3, num_classes=10, image_size=size)
    convs = [m for m in model.features if isinstance(m, ConvBlock)]
    assert len(convs) == blocks
    # the last block sees at most 4x4 pixels (2 x the head's 2x2 grid), at least 2x2
    out = model.features(torch.zeros(2, 3, size, size))
    assert 2 <= out.shape[-1] <= 4 or blocks == 6
    assert model(torch.zeros(2, 3, size, size)).shape == (2, 10)


def test_channels_fix_the_blocks_by_hand():
    model = SimpleCNN(1, 10, image_size=28, channels=[8, 16, 32], convs_per_block=1, head_grid=1)
    assert [b[0].out_channels for b in model.features] == [8, 16, 32]
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 3
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_a_cnn_sized_from_nothing_is_a_config_error():
    with pytest.raises(ConfigError, match="model.image_size"):
        SimpleCNN(1, 10)
    with pytest.raises(ConfigError, match="at least one block"):
        SimpleCNN(1, 10, image_size=28, channels=[])
