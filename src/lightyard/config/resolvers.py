"""OmegaConf resolvers that the configs use; registered by the CLI before Hydra composes."""

from __future__ import annotations

import os
import secrets

from omegaconf import OmegaConf


def _run_id() -> str:
    # Cached per config (and copied into every job of a sweep by Hydra, like ${now:}), so two runs
    # started in the same second still get different directories.
    return secrets.token_hex(3)


def _launch_dir() -> str:
    # Unlike ${hydra:runtime.cwd}, this also resolves at sweep level (hydra.sweep.dir), where
    # Hydra's runtime config is not set yet. Hydra never changes directory (job.chdir: false).
    return os.getcwd()


def _cpu_workers(limit: int = 8) -> int:
    """Loader workers that leave one core for the training loop."""
    return max(0, min(int(limit), (os.cpu_count() or 1) - 1))


def _cpu_cores(limit: int = 64) -> int:
    """Worker processes for a job that has the machine to itself (prepare): every core, >= 1."""
    return max(1, min(int(limit), os.cpu_count() or 1))


def _first_set(*values):
    """The first value that is not null (`${lightyard.first_set:${a},default}`)."""
    return next((v for v in values if v is not None), None)


def register() -> None:
    OmegaConf.register_new_resolver("lightyard.run_id", _run_id, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("lightyard.workers", _cpu_workers, replace=True)
    OmegaConf.register_new_resolver("lightyard.cores", _cpu_cores, replace=True)
    OmegaConf.register_new_resolver("lightyard.cwd", _launch_dir, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("lightyard.first_set", _first_set, replace=True)
