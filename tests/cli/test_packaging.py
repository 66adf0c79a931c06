"""A non-editable install ships the configs, and its console scripts run from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _wheel(tmp_path) -> Path:
    """lightyard's wheel, built from the checkout."""
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-q", "-w", str(wheels), str(REPO)], check=True, timeout=300)
    [wheel] = wheels.glob("lightyard-*.whl")
    return wheel


def _installed_wheel(tmp_path) -> Path:
    """lightyard's wheel installed, non-editably, into a folder of its own (its dependencies
    are this environment's); returns that folder."""
    wheel, site = _wheel(tmp_path), tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*install, str(wheel)], check=True, timeout=300)
    return site


def test_wheel_ships_configs_and_console_scripts(tmp_path):
    site = _installed_wheel(tmp_path)
    assert (site / "lightyard" / "conf" / "train.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    assert (site / "lightyard" / "conf" / "predict.yaml").is_file()
    scripts = ("train", "eval", "predict", "export", "prepare")
    for script in [f"lightyard-{name}" for name in scripts]:
        out = subprocess.run(
            [str(site / "bin" / script), "--cfg", "job"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert ("prepare_workers:" if script == "lightyard-prepare" else "task_name:") in out.stdout
    # a prepare from outside the repo writes the shards where the user's paths say
    out = subprocess.run(
        [str(site / "bin" / "lightyard-prepare"), "data.prepare_workers=1", "paths.data_dir=d"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"into {elsewhere / 'd' / 'prepared'}" in out.stdout, out.stdout
    assert "Train from it: python train.py data=streaming" in out.stdout
    # the installed package, not the checkout, answered
    probe = "import lightyard.config.compose as c; print(c.config_dir())"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == str(site / "lightyard" / "conf")


def _fresh_venv_with_wheel(tmp_path) -> Path:
    """A new virtual environment with lightyard's wheel installed into it, non-editably. Its
    dependencies (torch and the rest, gigabytes) are this environment's, seen through a .pth
    file; lightyard itself is only the wheel's (the checkout's editable install comes after the
    venv's own packages). Returns the venv's bin/."""
    wheel, venv = _wheel(tmp_path), tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    own = subprocess.run([python, "-c", purelib], capture_output=True, text=True, check=True)
    theirs = sysconfig.get_paths()["purelib"]
    Path(own.stdout.strip(), "zz_dependencies.pth").write_text(
        f"import site; site.addsitedir({theirs!r})\n"
    )
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    subprocess.run([*install, "--no-deps", str(wheel)], check=True, timeout=300)
    return venv / "bin"


def test_a_project_of_ones_own_from_an_installed_wheel(tmp_path):
    """The acceptance path of a new user: lightyard's wheel installed non-editably into a fresh
    venv, a project directory outside the checkout, `lightyard init`, then train, eval, resume
    and an Optuna sweep over the project's own hyperparameter, with no PYTHONPATH; its mistakes
    exit 2, and its own model/cnn.yaml wins over the built-in."""
    bin_dir = _fresh_venv_with_wheel(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LIGHTYARD_PROJECT")}
    probe = "import lightyard.config.compose as c; print(c.config_dir())"
    answer = subprocess.run(
        [bin_dir / "python", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert answer.stdout.strip().startswith(str(tmp_path / "venv")), answer  # the wheel's

    def run(*args: str, cwd, timeout: float = 300):
        script, *rest = args
        return subprocess.run(
            [str(bin_dir / script), *rest], cwd=cwd, env=env, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip

    done = run("lightyard", "init", str(tmp_path / "exp"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    project = tmp_path / "exp"
    quick = ["experiment=exp", "trainer.max_epochs=1", "callbacks.rich_progress_bar=null"]

    trained = run("lightyard-train", *quick, f"hydra.run.dir={project / 'run'}", cwd=project)
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((project / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["test/acc"] <= 1.0
    source = (project / "run" / ".hydra" / "config.yaml").read_text()
    assert "exp.models.MLP" in source

    evaluated = run("lightyard-eval", f"run_dir={project / 'run'}", "--cfg", "job", cwd=project)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    evaluated = run("lightyard-eval", f"run_dir={project / 'run'}", cwd=project)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]

    import torch

    def epochs_done() -> int:
        return torch.load(project / "run/checkpoints/last.ckpt", weights_only=True)["epoch"]

    before = epochs_done()
    resumed = run(
        "lightyard-train", f"resume={project / 'run'}", "trainer.max_epochs=2", cwd=project
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert epochs_done() > before  # the second epoch, trained by the resumed run

    sweep = run(
        "lightyard-train", "-m", *quick, "hparams_search=exp_optuna",
        "hydra.sweeper.n_trials=2", f"paths.log_dir={project / 'logs'}", cwd=project,
        timeout=600,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    [best] = (project / "logs").rglob("best_overrides.txt")
    line = best.read_text().splitlines()[0]
    assert line.startswith("lightyard-train ") and "model.hidden=" in line, line

    for mistake, words in (
        ("model.hiden=3", "did you mean `model.hidden`"),
        ("model._target_=exp.models.MPL", "has no `MPL`"),
        ("model.hidden=${data.widht}", "`data.widht`"),
    ):
        done = run("lightyard-train", "experiment=exp", mistake, cwd=project)
        assert done.returncode == 2 and words in done.stderr, (mistake, done.stderr[-2000:])

    (project / "conf/model/cnn.yaml").write_text(
        "# the project's own cnn\n_target_: exp.models.MLP\nchannels: ${data.channels}\n"
        "image_size: ${data.image_size}\nnum_classes: ${data.num_classes}\nhidden: 5\n"
    )
    shown = run("lightyard-train", "--cfg", "job", cwd=project)
    assert shown.returncode == 0 and "exp.models.MLP" in shown.stdout, shown.stderr
