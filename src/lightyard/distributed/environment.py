"""Hydra-safe multi-process start: every rank runs the config rank 0 composed, never `sys.argv`.

Lightning's subprocess launcher starts ranks > 0 by re-running the command line. Under a Hydra
multirun that command is the whole sweep, so each extra rank runs its own sweep in its own
directory (Lightning #11300). Here rank 0 saves the resolved config of its job to the job's
directory and starts the other local ranks with `python -m lightyard.distributed.rank <that
file>` (distributed/launcher.py): every rank of job k runs job k's parameters in job k's
directory, and only rank 0 talks to Hydra.

Processes started by torchrun or SLURM compose their config themselves (the same command runs on
every node); `external_rank_overrides` sends what ranks > 0 would write to a throwaway directory,
so a run keeps one directory whatever its number of nodes.

Torch-free: the CLI uses this module before anything heavy is imported.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# the environment a launched job sets up for its ranks and gives back when it ends
RANK_ENV = (
    *("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE"),
    "OMP_NUM_THREADS",
)
# LIGHTYARD_LOG_RANKS=all: ranks > 0 log at INFO too (default: warnings and errors only)
LOG_RANKS_ENV = "LIGHTYARD_LOG_RANKS"
# what a rank > 0 may run: the functions of the same names in lightyard.runs
JOBS = ("train", "evaluate", "predict", "export")


def rank_config_path(output_dir: str | Path) -> Path:
    """Where rank 0 saves the resolved config that ranks > 0 of the same job start from."""
    return Path(output_dir) / ".hydra" / "rank_config.yaml"


def save_rank_config(cfg, output_dir: str | Path) -> Path:
    from omegaconf import OmegaConf

    path = rank_config_path(output_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # resolved: ranks > 0 have no Hydra runtime to resolve ${hydra:...}, ${now:...} or a run id
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def external_rank() -> int:
    """This process's global rank when torchrun or SLURM started it, else 0."""
    if "RANK" in os.environ and "TORCHELASTIC_RUN_ID" in os.environ:
        return int(os.environ["RANK"])
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"])
    return 0


@contextmanager
def external_rank_overrides() -> Iterator[list[str]]:
    """Hydra overrides for a rank > 0 started by torchrun/SLURM: its run dir is a scratch dir
    removed afterwards (rank 0's is the run's; checkpoint paths come from rank 0), it writes no
    .hydra/, and it logs warnings only. Nothing for rank 0."""
    if external_rank() == 0:
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="lightyard-rank-") as scratch:
        overrides = [f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]
        if os.environ.get(LOG_RANKS_ENV) != "all":
            overrides.append("++hydra.job_logging.handlers.console.level=WARNING")
        yield overrides


def configure_rank_logging(rank: int) -> None:
    """Before Lightning is imported: it then sends its records to this handler, whose level
    (not the loggers') decides what a rank > 0 shows."""
    level = logging.INFO if os.environ.get(LOG_RANKS_ENV) == "all" else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(f"[rank {rank}] %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
