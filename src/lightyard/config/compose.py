"""Where the configs are, and a config composed in Python exactly as `python train.py
<overrides>` composes it, for notebooks, tests and benchmarks that call
`lightyard.runs.train.train(cfg)` themselves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, open_dict


def config_dir() -> Path:
    """The configs shipped inside an installed wheel, else the repository's top-level conf/."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "conf"
    if packaged.is_dir():
        return packaged
    return package.parents[1] / "conf"


def compose_config(
    overrides: Sequence[str] = (),
    *,
    root: Path,
    config_name: str = "train",
    output_dir: Path | None = None,
) -> DictConfig:
    """Paths resolve under `root` (data, outputs) and the run writes to `output_dir`
    (default `<root>/run`). Hydra's runtime config is set as in a job: `${hydra:...}` resolves."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from lightyard.config import resolvers

    resolvers.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir or Path(root) / "run")
        cfg.hydra.job.num = 0
        cfg.paths.root_dir = str(root)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
        cfg.print_config = False
    return cfg
