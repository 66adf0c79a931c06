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


MLFLOW_RUN_FILE = "mlflow_run_id"


def mlflow_logger(
    experiment_name: str = "lightyard",
    tracking_uri: str | None = None,
    save_dir: str = ".",
    run_name: str | None = None,
    tags: dict | list | None = None,
    log_model: bool = False,
    **kwargs,
):
    """Lightning's MLFlowLogger, one MLflow run per job:

    - `tracking_uri` null: MLFLOW_TRACKING_URI, else a SQLite store under the run's log
      directory (no server needed). Credentials come from MLflow's own environment variables
      (MLFLOW_TRACKING_USERNAME/PASSWORD or _TOKEN), never from the config.
    - The jobs of a sweep share the tag `lightyard.sweep` (the Optuna study's name, or the
      sweep directory), and their run names start with it.
    - The run's id is kept in the run directory (`mlflow_run_id`), so `resume=` (same
      directory) continues the same MLflow run; parameters the resumed run changes are
      recorded as tags (MLflow never changes a logged parameter).
    - `log_model` stays off by default: Lightning's checkpoint logging to MLflow has known
      trouble (Lightning #20932, #20540), and lightyard's checkpoints live in the run directory.
    A failed job's run ends FAILED (Lightning finalizes its loggers with "failed")."""
    from lightning.pytorch.loggers import MLFlowLogger

    class ResumableMLFlowLogger(MLFlowLogger):
        resumed = False

        def log_hyperparams(self, params) -> None:
            if not self.resumed:
                return super().log_hyperparams(params)
            flat = _flattened(dict(params))
            logged = self.experiment.get_run(self.run_id).data.params
            new = {k: v for k, v in flat.items() if k not in logged}
            changed = {k: v for k, v in flat.items() if k in logged and str(v)[:250] != logged[k]}
            if new:
                super().log_hyperparams(new)
            for key, value in changed.items():
                self.experiment.set_tag(self.run_id, f"lightyard.resumed.{key}", str(value)[:250])

    run_dir = Path(save_dir)
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        tracking_uri = f"sqlite:///{(run_dir.parent / 'mlflow.db').resolve()}"
    tags = dict(tags) if isinstance(tags, dict) else {"tags": ",".join(tags or [])}
    sweep = sweep_group()
    if sweep:
        tags["lightyard.sweep"] = sweep
        run_name = run_name or f"{sweep}-{run_dir.name}"
    tags["lightyard.run_dir"] = str(run_dir.resolve())
    id_file = run_dir / MLFLOW_RUN_FILE
    run_id = id_file.read_text().strip() if id_file.is_file() else None
    logger = ResumableMLFlowLogger(
        experiment_name=experiment_name,
        run_name=run_name or run_dir.name,
        tracking_uri=tracking_uri,
        tags=redact(tags),
        log_model=log_model,
        run_id=run_id,
        **kwargs,
    )
    logger.resumed = run_id is not None
    return logger


def _flattened(params: dict, prefix: str = "") -> dict:
    """Nested parameters as the keys Lightning's MLFlowLogger writes (`model/hidden`)."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flattened(value, name))
        else:
            flat[name] = value
    return flat


def remember_mlflow_run(trainer) -> None:
    """Writes the MLflow run's id into the run directory (rank 0, once the run exists), for a
    later resume= of the same directory."""
    from lightning.pytorch.loggers import MLFlowLogger

    for logger in trainer.loggers:
        if isinstance(logger, MLFlowLogger) and trainer.is_global_zero and logger.run_id:
            path = Path(trainer.default_root_dir) / MLFLOW_RUN_FILE
            if not path.is_file():
                path.write_text(logger.run_id + "\n")
