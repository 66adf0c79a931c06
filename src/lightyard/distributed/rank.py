"""`python -m lightyard.distributed.rank <rank_config.yaml> --job train`: a local rank > 0 of a
launched job, started by rank 0 (distributed/launcher.py) from the job's saved config. Nothing
imports this module: it is only ever run as the main module."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from lightyard.distributed.environment import JOBS, configure_rank_logging

log = logging.getLogger("lightyard.distributed.rank")  # also when run as __main__


def main(argv: list[str] | None = None) -> None:
    """Run one job (train or evaluate) of the config file as this process's rank."""
    parser = argparse.ArgumentParser(
        prog="python -m lightyard.distributed.rank", description=main.__doc__
    )
    parser.add_argument("config", type=Path, help="the job's .hydra/rank_config.yaml")
    parser.add_argument("--job", choices=JOBS, default="train")
    args = parser.parse_args(argv)

    configure_rank_logging(int(os.environ.get("LOCAL_RANK", "1")))
    from omegaconf import OmegaConf, open_dict

    from lightyard.config.project import activate, find_project

    activate(find_project())  # rank 0 named the project in LIGHTYARD_PROJECT

    from lightyard import runs
    from lightyard.distributed.launcher import close_process_group
    from lightyard.errors import ConfigError, Preempted, RunFailed, exit_with

    cfg = OmegaConf.load(args.config)
    log.info("%s from %s", args.job, args.config)
    with open_dict(cfg):
        cfg.print_config = False
    try:
        runs.job(args.job)(cfg)
    except (ConfigError, Preempted, RunFailed) as stop:  # rank 0 reports it; the code matters
        close_process_group()
        exit_with(stop)
    finally:
        close_process_group()


if __name__ == "__main__":
    main()
