"""What sharded training changes for the code around the model."""

from __future__ import annotations


def is_sharded(tensor) -> bool:
    """An FSDP2 DTensor (a parameter or its gradient), sharded across ranks."""
    return hasattr(tensor, "device_mesh")
