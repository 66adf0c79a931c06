"""A user's own project (`lightyard init`, [tool.lightyard]) through the console scripts, run from
the project's directory as a user runs them: its options join lightyard's and win over them, its
code imports without PYTHONPATH, and its mistakes are caught before a run starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
# launches the console scripts (subprocesses): the full suite, not the quick subset
pytestmark = pytest.mark.slow


def _run(project: Path, script: str, *args: str, timeout: float = 120):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LIGHTYARD_PROJECT")}
    return subprocess.run(
        [str(BIN / script), *args], cwd=project, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("projects") / "my-exp"
    done = subprocess.run(
        [str(BIN / "lightyard"), "init", str(root)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "lightyard-train experiment=my_exp" in done.stdout
    # an option of the project's own with a built-in's name: the project's wins
    (root / "conf/model/cnn.yaml").write_text(
        "# the project's cnn: its MLP, narrower\n_target_: my_exp.models.MLP\n"
        "channels: ${data.channels}\nimage_size: ${data.image_size}\n"
        "num_classes: ${data.num_classes}\nhidden: 7\n"
    )
    return root


def test_init_writes_a_project_that_validates(project):
    for name in ("pyproject.toml", "README.md", "my_exp/models.py", "my_exp/data.py",
                 "conf/experiment/my_exp.yaml", "conf/hparams_search/my_exp_optuna.yaml",
                 "tests/test_train.py"):  # fmt: skip
        assert (project / name).is_file(), name
    done = _run(project, "lightyard-train", "experiment=my_exp", "validate=true")
    assert done.returncode == 0, done.stderr
    again = subprocess.run(
        [str(BIN / "lightyard"), "init", str(project)], capture_output=True, text=True
    )
    assert again.returncode == 2 and "not an empty directory" in again.stderr


def test_the_projects_option_wins_and_help_says_so(project):
    done = _run(project, "lightyard-train", "--cfg", "job")
    assert done.returncode == 0, done.stderr
    assert "my_exp.models.MLP" in done.stdout and "hidden: 7" in done.stdout
    shown = _run(project, "lightyard-train", "--help").stdout
    assert "*!cnn" in shown and "+mlp" in shown and "+stripes" in shown
    assert str(project / "conf") in shown


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["model.hiden=3"], ["model.hiden", "did you mean `model.hidden`"]),
        (["model._target_=my_exp.models.MPL"], ["`my_exp.models` has no `MPL`", "`MLP`"]),
        (["model.hidden=${data.widht}"], ["model.hidden", "`data.widht`", "does not have"]),
        (["model.hidden=${data.num_clases}"], ["did you mean `num_classes`"]),
    ],
    ids=["typo_in_the_projects_model", "missing_class", "dangling", "misspelt_interpolation"],
)
def test_mistakes_in_the_project_exit_2_before_a_run(project, args, words):
    done = _run(project, "lightyard-train", "experiment=my_exp", *args)
    assert done.returncode == 2, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (project / "outputs").exists()


def test_config_dir_and_config_name_routes_are_checked(project, tmp_path):
    extra = tmp_path / "extra"
    (extra / "model").mkdir(parents=True)
    (extra / "model/tiny.yaml").write_text(
        "# a tiny MLP\n_target_: my_exp.models.MLP\nchannels: 1\nimage_size: 8\n"
        "num_classes: 4\nhidden: 3\n"
    )
    shown = _run(project, "lightyard-train", "--config-dir", str(extra), "--help").stdout
    assert "+tiny" in shown and f"Also searched: {extra}" in shown
    base = ["experiment=my_exp", "--config-dir", str(extra)]
    assert _run(project, "lightyard-train", *base, "model=tiny", "validate=true").returncode == 0
    done = _run(project, "lightyard-train", *base, "model=tiny", "model.hiden=2")
    assert done.returncode == 2 and "model.hiden" in done.stderr, done.stderr
    done = _run(project, "lightyard-train", "-cn", "train", "model.hiden=2")
    assert done.returncode == 2 and "model.hiden" in done.stderr, done.stderr
    assert not (project / "outputs").exists()


def test_the_scaffolds_parts_meet_the_contracts(project, monkeypatch):
    from lightyard import contracts
    from lightyard.models.cnn import SimpleCNN
    from lightyard.models.gpt import GPT

    monkeypatch.syspath_prepend(str(project))
    from my_exp.data import StripesDataModule
    from my_exp.models import MLP

    model = MLP(1, 8, 4)
    assert isinstance(model, contracts.ImageBackbone) and model.input_kind in contracts.INPUT_KINDS
    data = StripesDataModule()
    assert isinstance(data, contracts.DataModule)
    data.setup()
    images, labels = next(iter(data.train_dataloader()))
    assert model(images).shape == (images.shape[0], 4) and labels.dtype.is_floating_point is False
    assert SimpleCNN.input_kind == "image" and GPT.input_kind == "lm"


def test_steps_per_batch_on_several_processes_needs_a_datamodule_that_shards_itself(project):
    (project / "my_exp/plain_data.py").write_text(
        "import lightning as L\n\n\nclass PlainData(L.LightningDataModule):\n"
        '    input_kind = "image"\n'
    )
    several = [
        "experiment=my_exp", "steps_per_batch=2", "trainer=ddp", "trainer.devices=2",
        "trainer.accelerator=cpu", "callbacks.step_checkpoint.every_n_train_steps=10",
    ]  # fmt: skip
    done = _run(project, "lightyard-train", *several, "data._target_=my_exp.plain_data.PlainData")
    assert done.returncode == 2 and "does not shard itself" in done.stderr, done.stderr
    ok = _run(project, "lightyard-train", *several, "validate=true")  # SplitDataModule shards
    assert ok.returncode == 0, ok.stderr
