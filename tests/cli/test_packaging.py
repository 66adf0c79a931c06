"""A non-editable install ships the configs, and its console scripts run from any directory."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_wheel_ships_configs_and_console_scripts(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-q", "-w", str(wheels), str(REPO)], check=True, timeout=300)
    [wheel] = wheels.glob("lightyard-*.whl")
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*install, str(wheel)], check=True, timeout=300)
    assert (site / "lightyard" / "conf" / "train.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    assert (site / "lightyard" / "conf" / "predict.yaml").is_file()
    for script in ("lightyard-train", "lightyard-eval", "lightyard-predict", "lightyard-export"):
        out = subprocess.run(
            [str(site / "bin" / script), "--cfg", "job"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "task_name:" in out.stdout
    # the installed package, not the checkout, answered
    probe = "import lightyard.config.compose as c; print(c.config_dir())"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == str(site / "lightyard" / "conf")
