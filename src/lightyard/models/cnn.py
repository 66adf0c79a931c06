"""A small CNN for low-resolution images (8x8 digits up to 32x32 CIFAR)."""

from __future__ import annotations

from torch import nn


class SimpleCNN(nn.Module):
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
        layers: list[nn.Module] = []
        previous = in_channels
        for index, width in enumerate(channels):
            layers += [
                nn.Conv2d(previous, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            # halve the resolution between blocks; the head pools whatever size is left
            if index < len(channels) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            previous = width
        self.features = nn.Sequential(*layers)
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
