"""The scaling options as configured: every Trainer argument reachable without `+`, FSDP built
from the backbone's blocks, engines that refuse hardware they cannot use, rank detection."""

from __future__ import annotations

import inspect

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from lightyard.config.compose import config_dir
from lightyard.config.instantiate import instantiate
from lightyard.distributed.environment import external_rank, external_rank_overrides
from lightyard.distributed.strategies import FSDP2Strategy, fsdp
from lightyard.errors import ConfigError
from lightyard.models.cnn import ConvBlock, SimpleCNN
from lightyard.models.resnet import BasicBlock, ResNet
from lightyard.runs.build import batch_sizes, build_task, build_trainer

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_every_trainer_argument_is_in_the_default_trainer():
    listed = OmegaConf.load(config_dir() / "trainer" / "default.yaml").keys()
    arguments = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    # callbacks and logger come from their own groups
    assert arguments - {"callbacks", "logger"} <= set(listed)


def test_backbones_name_their_blocks():
    assert SimpleCNN.block_classes == (ConvBlock,)
    assert ResNet.block_classes == (BasicBlock,)


def test_fsdp_preset_builds_fsdp2_with_the_backbones_blocks_on_cpu(cfg_factory):
    cfg = cfg_factory(
        "trainer=fsdp", "trainer.accelerator=cpu", "model=resnet", "trainer.devices=1"
    )
    task = build_task(cfg)
    trainer = build_trainer(cfg, [], task)
    assert isinstance(trainer.strategy, FSDP2Strategy)
    assert trainer.strategy.block_classes == (BasicBlock,)
    assert trainer.strategy._save_distributed_checkpoint is True


def test_fsdp1_on_cpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="engine=fsdp1 needs CUDA.*engine=fsdp2"):
        fsdp(engine="fsdp1", accelerator="cpu")
    with pytest.raises(ConfigError, match="engine=fsdp3 is not one of auto, fsdp1, fsdp2"):
        fsdp(engine="fsdp3")


def test_global_batch_is_devices_nodes_batch_and_accumulation(cfg_factory):
    cfg = cfg_factory(
        "trainer=multinode",
        "trainer.accelerator=cpu",
        "trainer.devices=3",
        "trainer.accumulate_grad_batches=4",
        "data.batch_size=8",
    )
    trainer = build_trainer(cfg, [])
    assert batch_sizes(cfg, trainer) == {"batch/per_device": 8, "batch/global": 3 * 2 * 8 * 4}


def test_ranks_above_zero_of_external_launchers_write_to_scratch(monkeypatch):
    for key in ("RANK", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    assert external_rank() == 0
    with external_rank_overrides() as overrides:
        assert overrides == []
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "5")
    assert external_rank() == 5
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("RANK", "3")
    assert external_rank() == 3
    with external_rank_overrides() as overrides:
        assert "hydra.output_subdir=null" in overrides
        assert "++hydra.job_logging.handlers.console.level=WARNING" in overrides


@pytest.mark.gpu
@CUDA
@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true", "16-mixed"])
def test_precision_presets_train_on_gpu(cfg_factory, precision):
    from lightyard.runs.train import train

    cfg = cfg_factory("trainer=gpu", f"trainer.precision={precision}", "debug=fast", "logger=none")
    train(cfg)


@pytest.mark.gpu
@CUDA
def test_fsdp1_wraps_blocks_on_gpu(cfg_factory):
    from lightning.pytorch.strategies import FSDPStrategy

    cfg = cfg_factory(
        "trainer=fsdp",
        "trainer.accelerator=gpu",
        "trainer.devices=1",
        "trainer.strategy.activation_checkpointing=true",
        "trainer.max_steps=3",
        "trainer.limit_val_batches=1",
    )
    task = build_task(cfg)
    trainer = build_trainer(cfg, [], task)
    assert isinstance(trainer.strategy, FSDPStrategy)
    assert trainer.strategy._state_dict_type == "sharded"
    trainer.fit(task, datamodule=instantiate(cfg.data, "data"))
    wrapped = [m for m in task.modules() if type(m).__name__ == "FullyShardedDataParallel"]
    assert len(wrapped) >= 2  # the backbone's ConvBlocks, each its own FSDP unit


@pytest.mark.gpu
@CUDA
def test_compile_on_gpu_trains(cfg_factory):
    from lightyard.runs.train import train

    train(cfg_factory("trainer=gpu", "compile=true", "debug=fast", "logger=none"))
