"""Logger factories for what Lightning's loggers do not decide themselves."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Literal

from lightyard.config.secrets import redact


def wandb_has_credentials() -> bool:
    """True when W&B could sync: an API key in the environment or in ~/.netrc (`wandb login`)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        netrc_file = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
        return netrc_file.is_file() and bool(netrc.netrc(netrc_file).authenticators("api.wandb.ai"))
    except (OSError, netrc.NetrcParseError):
        return False


def sweep_group() -> str | None:
    """The name shared by every job of a sweep, so W&B groups them: the Optuna study's name
    (re-runs of a study join its group), else the sweep dir as <date>_<time>_<id>; None for a
    single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    study = hydra_cfg.sweeper.get("study_name")
    if study:
        return str(study)
    sweep_dir = Path(str(hydra_cfg.sweep.dir))
    return f"{sweep_dir.parent.name}_{sweep_dir.name}"


def wandb_logger(
    project: str = "lightyard",
    save_dir: str = ".",
    offline: bool | Literal["auto"] = "auto",
    entity: str | None = None,
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    job_type: str | None = None,
    log_model: bool = False,
    **kwargs,
):
    """A WandbLogger that runs offline unless credentials exist (or WANDB_MODE says otherwise).
    Each job of a sweep is its own run, grouped under the sweep's name unless `group` is set; its
    run id follows from the run directory, so a resumed or requeued run (same directory) continues
    the same W&B run."""
    import hashlib

    from lightning.pytorch.loggers import WandbLogger

    kwargs.setdefault("id", hashlib.sha1(str(Path(save_dir).resolve()).encode()).hexdigest()[:16])
    kwargs.setdefault("resume", "allow")
    sweep = sweep_group()
    group = group or sweep
    if name is None and sweep:
        name = f"{sweep}-{Path(save_dir).name}"

    if offline == "auto":
        mode = os.environ.get("WANDB_MODE")
        offline = mode in ("offline", "dryrun") if mode else not wandb_has_credentials()
    # whatever the config interpolated into the run's own fields (tags, name, notes, config)
    # is stored in the run: no secret of the environment goes there (W&B's own key comes from
    # the environment or `wandb login`, never from these arguments)
    shown = redact(
        {
            "project": project,
            "entity": entity,
            "name": name or Path(save_dir).name,
            "group": group,
            "tags": list(tags or []),
            "job_type": job_type,
            **kwargs,
        }
    )
    return WandbLogger(save_dir=save_dir, offline=bool(offline), log_model=log_model, **shown)
