"""A small CNN for low-resolution images (8x8 digits up to 32x32 CIFAR)."""

from __future__ import annotations

from torch import nn


class ConvBlock(nn.Sequential):
    """3x3 conv, batch norm, ReLU, then a 2x2 max-pool unless it is the last block."""

    def __init__(self, in_channels: int, out_channels: int, pool: bool) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        if pool:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        super().__init__(*layers)


class SimpleCNN(nn.Module):
    # the repeated blocks: FSDP shards (and checkpoints activations of) each one as a unit
    block_classes = (ConvBlock,)
    input_kind = "image"

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: list[int] = (32, 64),
        hidden: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        # halve the resolution between blocks; the head pools whatever size is left
        self.features = nn.Sequential(
            *(
                ConvBlock(widths[i], widths[i + 1], pool=i < len(channels) - 1)
                for i in range(len(channels))
            )
        )
        previous = widths[-1]
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(previous, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, images):
        return self.head(self.features(images))
