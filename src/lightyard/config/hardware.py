"""What this machine has, found without torch (the checks run before torch is imported)."""

from __future__ import annotations

import os
from pathlib import Path

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def visible_gpus() -> int:
    """GPUs this process may use: those the NVIDIA driver exposes, limited by
    CUDA_VISIBLE_DEVICES."""
    count = len(list(NVIDIA_GPUS.iterdir())) if NVIDIA_GPUS.is_dir() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        listed = [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
        count = min(count, len(listed))
    return count
