"""A small CNN for low-resolution images whose depth follows the image size: one block per
halving of the resolution, so the last block sees a few pixels whatever the input (8x8 digits,
28x28 MNIST, 32x32 CIFAR, 64x64 image folders)."""

from __future__ import annotations

from torch import nn

from lightyard.errors import ConfigError

# the widths blocks take in order when `channels` is not given
WIDTHS = (16, 32, 64, 128, 256, 512)


def depth_for(image_size: int, head_grid: int = 2) -> int:
    """Blocks until the feature map is at most twice the head's grid (a 2x2 pooled grid then
    keeps where in the image a feature was), at least two: 8 -> 2, 28 and 32 -> 4, 64 -> 5."""
    blocks, size = 1, image_size
    while size > 2 * head_grid and blocks < len(WIDTHS):
        size = -(-size // 2)
        blocks += 1
    return max(2, blocks)


class ConvBlock(nn.Sequential):
    """`convs` 3x3 convs, each with batch norm and ReLU, then a 2x2 max-pool unless it is the
    last block."""

    def __init__(self, in_channels: int, out_channels: int, pool: bool, convs: int = 1) -> None:
        layers: list[nn.Module] = []
        for index in range(convs):
            layers += [
                nn.Conv2d(
                    in_channels if index == 0 else out_channels,
                    out_channels,
                    kernel_size=3,
                    padding=1,
                    bias=False,
                ),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
        if pool:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        super().__init__(*layers)


class SimpleCNN(nn.Module):
    """`channels` null: as many blocks as `image_size` needs (depth_for), widths from 16 up;
    a list fixes the blocks' widths (and so their number) by hand."""

    # the repeated blocks: FSDP shards (and checkpoints activations of) each one as a unit
    block_classes = (ConvBlock,)
    input_kind = "image"

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | None = None,
        channels: list[int] | None = None,
        convs_per_block: int = 2,
        head_grid: int = 2,
        hidden: int = 128,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if channels is None:
            if image_size is None:
                raise ConfigError(
                    "model.channels=null sizes the network from the image, but model.image_size "
                    "is not set. Allowed: an image size (model.image_size=${data.image_size}) or "
                    "a list of block widths. Fix: set model.image_size or model.channels=[32,64]"
                )
            channels = list(WIDTHS[: depth_for(image_size, head_grid)])
        channels = list(channels)
        if not channels or convs_per_block < 1 or head_grid < 1:
            raise ConfigError(
                f"model.channels={channels}, model.convs_per_block={convs_per_block}, "
                f"model.head_grid={head_grid}. Allowed: at least one block, one conv per block "
                "and a head grid of 1 or more. Fix: model.channels=null (sized from the image)"
            )
        widths = [in_channels, *channels]
        # halve the resolution between blocks; the head pools whatever size is left
        self.features = nn.Sequential(
            *(
                ConvBlock(widths[i], widths[i + 1], i < len(channels) - 1, convs_per_block)
                for i in range(len(channels))
            )
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(head_grid),
            nn.Flatten(),
            nn.Linear(widths[-1] * head_grid * head_grid, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, images):
        return self.head(self.features(images))
