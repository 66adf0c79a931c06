"""Print the resolved config as a rich tree, the groups in the order the user thinks of them."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

ORDER = (
    "data",
    "model",
    "task",
    "optimizer",
    "scheduler",
    "trainer",
    "callbacks",
    "logger",
    "paths",
)


def print_config_tree(cfg: DictConfig) -> None:
    import rich
    from rich.syntax import Syntax
    from rich.tree import Tree

    from lightyard.config.secrets import redact

    tree = Tree("config", style="bold", guide_style="dim")
    groups = [k for k in ORDER if isinstance(cfg.get(k), DictConfig)]
    groups += [k for k in cfg if k not in groups and isinstance(cfg[k], DictConfig)]
    # the run's own switches (seed, train, test, ...) first, as one node
    switches = {k: cfg[k] for k in cfg if k not in groups}
    nodes = [("run", OmegaConf.create(switches))] + [(k, cfg[k]) for k in groups]
    for key, value in nodes:
        masked = redact(OmegaConf.to_container(value, resolve=True))  # secrets never printed
        text = OmegaConf.to_yaml(OmegaConf.create(masked)).rstrip() or "{}"
        tree.add(key, style="bold cyan").add(Syntax(text, "yaml", theme="ansi_dark"))
    rich.print(tree)
