"""Train a model: `python train.py model=resnet data=cifar10` (see README.md)."""

from lightyard.cli import train

if __name__ == "__main__":
    train()
