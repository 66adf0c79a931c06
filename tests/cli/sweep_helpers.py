"""A tiny Optuna search written the way a user writes one (conf/hparams_search/<name>.yaml), in a
config dir of the test's own that Hydra searches besides conf/."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

TINY_TRIAL = {
    "optimized_metric": "val/acc_best",
    "test": False,
    "print_config": False,
    "trainer": {
        "max_epochs": 1,
        "limit_train_batches": 3,
        "limit_val_batches": 2,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    },
}


def write_search(
    root: Path,
    params: dict[str, str],
    name: str = "tiny",
    sampler: str = "random",
    pruner: str = "none",
    sweeper: dict | None = None,
    **config,
) -> list[str]:
    """Writes hparams_search/<name>.yaml under root; returns the overrides that select it."""
    body = {
        "defaults": [
            {"override /hydra/sweeper": "optuna"},
            {"override /hydra/sweeper/sampler": sampler},
            {"override /hydra/sweeper/pruner": pruner},
            {"override /callbacks": "none"},
            {"override /logger": "none"},
        ],
        **TINY_TRIAL,
        **config,
        "hydra": {
            "sweep": {
                "dir": "${paths.log_dir}/${task_name}/studies/${hydra.sweeper.study_name}",
                "subdir": "trials/${optuna.trial_number}",
            },
            "sweeper": {"plots": False, **(sweeper or {}), "params": params},
        },
    }
    folder = root / "search_conf" / "hparams_search"
    folder.mkdir(parents=True, exist_ok=True)
    text = "# @package _global_\n# a test search\n" + yaml.safe_dump(body, sort_keys=False)
    (folder / f"{name}.yaml").write_text(text)
    return ["-m", f"hydra.searchpath=[file://{root / 'search_conf'}]", f"hparams_search={name}"]


def study_dir(root: Path, name: str = "tiny") -> Path:
    return root / "outputs" / "train" / "studies" / name


def load_study(root: Path, name: str = "tiny"):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir(root, name)}/study.db")


def explain(out: subprocess.CompletedProcess) -> str:
    return f"exit {out.returncode}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
