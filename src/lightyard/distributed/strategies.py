"""Sharded-training strategies built from config and from the backbone's own `block_classes`.

Every backbone names its repeated blocks in a class attribute `block_classes`; FSDP shards each
block as one unit (and recomputes its activations when asked), so a new backbone needs no
strategy code of its own.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch
from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy, Strategy
from torch import nn

from lightyard import _internals
from lightyard.errors import ConfigError

log = logging.getLogger(__name__)

ENGINES = ("auto", "fsdp1", "fsdp2")


def block_classes(module: nn.Module | None) -> tuple[type[nn.Module], ...]:
    """The repeated blocks of a backbone (or of a task's backbone); () when it names none."""
    if module is None:
        return ()
    backbone = getattr(module, "backbone", module)
    return tuple(getattr(type(backbone), "block_classes", ()))


class FSDP2Strategy(ModelParallelStrategy):
    """Pure data-parallel FSDP2: one mesh dimension over every process of every node.

    Lightning's ModelParallelStrategy leaves sharding to `LightningModule.configure_model`; the
    task's hook calls `parallelize` here, so the task needs to know nothing about FSDP."""

    def __init__(
        self,
        block_classes: tuple[type[nn.Module], ...] = (),
        activation_checkpointing: bool = False,
        reshard_after_forward: bool = True,
        sharded_checkpoint: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=sharded_checkpoint,
            **kwargs,
        )
        self.block_classes = tuple(block_classes)
        self.activation_checkpointing = activation_checkpointing
        self.reshard_after_forward = reshard_after_forward

    def setup_environment(self) -> None:
        # "auto" in Lightning means one data-parallel group per node; here it spans all processes
        if _internals.data_parallel_size(self) == "auto":
            _internals.set_data_parallel_size(self, self.num_nodes * self.num_processes)
        super().setup_environment()

    def parallelize(self, backbone: nn.Module) -> None:
        """Shard each block, then the rest of the backbone. Keeps parameter names unchanged, so
        checkpoints load into unsharded models and back. Idempotent (configure_model may run
        again for test after fit)."""
        from torch.distributed.fsdp import FSDPModule, fully_shard

        if isinstance(backbone, FSDPModule):
            return
        name = type(backbone).__name__  # fully_shard swaps the class for an FSDP<name> subclass
        mesh = self.device_mesh["data_parallel"]
        blocks = [m for m in backbone.modules() if isinstance(m, self.block_classes)]
        for block in blocks:
            if self.activation_checkpointing:
                recompute_activations(block)
            fully_shard(block, mesh=mesh, reshard_after_forward=self.reshard_after_forward)
        fully_shard(backbone, mesh=mesh, reshard_after_forward=self.reshard_after_forward)
        log.info("FSDP2: sharded %d blocks of %s", len(blocks), name)


def recompute_activations(block: nn.Module) -> None:
    """Activation checkpointing without a wrapper module (parameter names stay as they are): the
    block's forward runs under torch.utils.checkpoint, which keeps only its inputs and recomputes
    the rest in the backward pass."""
    from torch.utils.checkpoint import checkpoint

    forward = block.forward

    def checkpointed(*args: Any, **kwargs: Any):
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    block.forward = checkpointed


def _cuda_accelerator(accelerator: str) -> bool:
    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def fsdp(
    engine: Literal["auto", "fsdp1", "fsdp2"] = "auto",
    accelerator: str = "auto",
    block_classes: tuple[type[nn.Module], ...] = (),
    activation_checkpointing: bool = False,
    sharded_checkpoint: bool = True,
    sharding_strategy: str = "FULL_SHARD",
    reshard_after_forward: bool = True,
) -> Strategy:
    """FSDP for `trainer=fsdp`: Lightning's FSDPStrategy on CUDA, FSDP2 anywhere (CPU included).
    `block_classes` comes from the backbone (see `build_strategy`), never from config."""
    if engine not in ENGINES:
        raise ConfigError(
            f"trainer.strategy.engine={engine} is not one of {', '.join(ENGINES)}; "
            "fsdp2 runs on CPU and GPU, fsdp1 on CUDA only"
        )
    if engine == "auto":
        engine = "fsdp1" if _cuda_accelerator(accelerator) else "fsdp2"
    if engine == "fsdp2":
        return FSDP2Strategy(
            block_classes=block_classes,
            activation_checkpointing=activation_checkpointing,
            reshard_after_forward=reshard_after_forward,
            sharded_checkpoint=sharded_checkpoint,
        )
    if not _cuda_accelerator(accelerator):
        raise ConfigError(
            f"trainer.strategy.engine=fsdp1 needs CUDA GPUs (trainer.accelerator={accelerator}); "
            "use trainer.strategy.engine=fsdp2 (or auto) to shard on CPU"
        )
    policy = set(block_classes) or None
    return FSDPStrategy(
        auto_wrap_policy=policy,
        activation_checkpointing_policy=policy if activation_checkpointing else None,
        sharding_strategy=sharding_strategy,
        state_dict_type="sharded" if sharded_checkpoint else "full",
    )
