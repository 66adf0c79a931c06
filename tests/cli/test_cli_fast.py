"""The CLI answers instantly and clearly without touching torch."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, run_cli

PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('HEAVY:', sorted(m for m in ('torch', 'lightning') "
    "if m in sys.modules)))\n"
    "sys.argv = ['train.py', {args}]\n"
    "from lightyard.cli import train\n"
    "train()\n"
)


def _imports_for(*args: str) -> str:
    code = PROBE.format(args=", ".join(repr(a) for a in args))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_cfg_job_imports_no_torch():
    out = _imports_for("--cfg", "job")
    assert "HEAVY: []" in out
    assert "_target_: lightyard.models.cnn.SimpleCNN" in out


def test_help_lists_groups_without_torch():
    out = _imports_for("--help")
    assert "HEAVY: []" in out
    for group in ("data:", "model:", "optimizer:", "trainer:", "logger:", "debug:"):
        assert group in out


def test_eval_without_a_run_is_a_clear_error(tmp_path):
    out = run_cli("eval.py", cwd=tmp_path)
    assert out.returncode == 2
    assert "run_dir=" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "outputs").exists()


def test_eval_of_a_missing_run_dir_is_a_clear_error(tmp_path):
    out = run_cli("eval.py", f"run_dir={tmp_path / 'nope'}", cwd=tmp_path)
    assert out.returncode == 2
    assert ".hydra/config.yaml" in out.stderr and "Traceback" not in out.stderr
