"""What every job on a trained run (eval, predict, export) does before its own work: the run's
config is there and fits, the libraries' private names are found, and the checkpoint to use is
picked (ckpt_path, else the run's best)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from lightyard import _internals
from lightyard.config.fit import check_compatible
from lightyard.config.tree import print_config_tree
from lightyard.errors import ConfigError
from lightyard.runs.checkpoint_files import find_best_checkpoint
from lightyard.runs.process import quiet_known_noise, quiet_weights_only_restore


def open_trained_run(cfg: DictConfig, job: str) -> Path:
    """The checkpoint `job` loads, after the checks every such job shares."""
    if "model" not in cfg or "data" not in cfg:
        raise ConfigError(
            f"{job} needs run_dir=<training run dir> or ckpt_path=<checkpoint in one>"
        )
    _internals.check()
    check_compatible(cfg)
    if cfg.get("print_config"):
        print_config_tree(cfg)
    quiet_known_noise()
    quiet_weights_only_restore()
    return Path(cfg.ckpt_path) if cfg.get("ckpt_path") else find_best_checkpoint(Path(cfg.run_dir))
