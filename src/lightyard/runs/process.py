"""Process-wide settings a run makes before it builds anything: glibc's malloc tuned for a
training loop's CPU memory, and the known noise of the libraries silenced, each message by its
text and module, never a whole category."""

from __future__ import annotations

import ctypes
import logging
import sys
import warnings

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


def quiet_known_noise() -> None:
    """Lightning prints through a console handler of its own; Hydra's handlers already print and
    write the run's log file, so drop Lightning's (no doubled lines) and its advertising tip.
    Deprecation warnings that the libraries raise from inside themselves, with nothing a user
    can change: torchdata 0.11's StatefulDataLoader calls torch.set_vital, Lightning 2.6 tests a
    pytree spec with an isinstance that torch deprecated, and peft calls a renamed method of
    transformers (LoRA runs)."""
    logging.getLogger("lightning").handlers.clear()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not any(tip in record.getMessage() for tip in ("litlogger", "litmodels"))
    )
    warnings.filterwarnings(
        "ignore",
        message=r"'set_vital' is deprecated",
        category=UserWarning,
        module=r"torchdata\.stateful_dataloader\.stateful_dataloader",
    )
    warnings.filterwarnings(
        "ignore",
        message=r".*isinstance\(treespec, LeafSpec\)",
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
    # the task's own batch hook (it keeps recurrent models' sequence lengths on the host,
    # lightyard.models.rnn.HostLengths): Lightning uses it beside any DataModule that has none,
    # and says so on every run
    warnings.filterwarnings(
        "ignore",
        message=r"You have overridden `on_before_batch_transfer` in `LightningModule` but have "
        r"passed in a `LightningDataModule`",
        category=UserWarning,
    )
    # peft asks a transformers model whether it checkpoints activations by a name that
    # transformers 5 renamed
    warnings.filterwarnings(
        "ignore",
        message=r"`is_gradient_checkpointing` is deprecated",
        category=FutureWarning,
        module=r"transformers\.modeling_utils",
    )


def quiet_weights_only_restore() -> None:
    """Evaluation and prediction restore a checkpoint's weights only; Lightning still asks for
    the callbacks that wrote it (they matter when fitting resumes, never here)."""
    warnings.filterwarnings(
        "ignore", message=r"Be aware that when using `ckpt_path`, callbacks used to create"
    )


def prepare_process(cfg) -> None:
    """What a training run sets for the whole process before it builds anything."""
    quiet_known_noise()
    if cfg.get("keep_freed_memory", True):
        keep_freed_memory()
