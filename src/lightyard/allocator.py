"""glibc's malloc, tuned for a training loop's CPU memory."""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit systems
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """A training step allocates and frees the same large CPU buffers (activations, gradients)
    every step. By default glibc serves blocks over 128 KiB with fresh mmaps and gives a free
    heap top back to the OS, so each step page-faults the same memory in again: on the 2-core
    benchmark machine, about a thousand faults and 3% of a small transformer's step. Serving
    blocks up to 32 MiB from the heap and keeping what is freed there makes the steady state
    fault-free; the process holds its peak CPU memory, which each step reaches anyway.

    Process-wide, so `train` calls it only when the root config's `keep_freed_memory` is true
    (the default). Returns False where the C library has no mallopt (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not done:
        log.debug("mallopt refused the thresholds; malloc keeps its defaults")
    return done
