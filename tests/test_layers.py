"""The layout's rules, checked: layers import only downwards, the CLI and config layer stay
torch-free, and every private name of another library is looked up before a run."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from lightyard import _internals
from lightyard.errors import InternalsChanged
from tests.conftest import REPO

TORCH_FREE = (
    "lightyard.cli",
    "lightyard.config.compose",
    "lightyard.config.validate",
    "lightyard.config.help",
    "lightyard.config.instantiate",
    "lightyard.config.tree",
    "lightyard.distributed.environment",
    "lightyard.runs.resume",
    "lightyard.runs.run_dirs",
)


def test_import_contracts_hold():
    # import-linter's console script, run by this interpreter (any environment that has it)
    code = "import sys, importlinter.cli as c; sys.exit(c.lint_imports_command())"
    out = subprocess.run(
        [sys.executable, "-c", code, "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 kept, 0 broken" in out.stdout


def test_the_cli_and_config_modules_load_no_heavy_library():
    code = (
        "import importlib, sys\n"
        f"for name in {TORCH_FREE!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = ('torch', 'lightning', 'torchmetrics', 'transformers', 'pandas')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_private_name_is_there_in_the_installed_versions():
    _internals.check.cache_clear()
    _internals.check()


def test_a_missing_private_name_fails_naming_the_versions(monkeypatch):
    gone = _internals.Private(
        "log_steps", "lightning", "Trainer._gone", "a public API", lambda: False
    )
    monkeypatch.setattr(_internals, "PRIVATE_NAMES", (gone,))
    _internals.check.cache_clear()
    try:
        with pytest.raises(InternalsChanged) as error:
            _internals.check()
    finally:
        _internals.check.cache_clear()
    text = str(error.value)
    assert "Trainer._gone" in text and "a public API" in text
    assert "lightning 2." in text and "torch 2." in text
    assert error.value.exit_code == 2


def test_no_other_module_names_a_private_of_lightning_torch_or_omegaconf():
    """The names this project once reached into: only _internals may mention them."""
    names = (
        "_SubprocessScriptLauncher", "_ChildProcessObserver", "_launcher", "_combined_loader",
        "_batches_that_stepped", "_should_check_val_fx", "_slurm_sigusr_handler_fn",
        "_update_metrics", "_logger_connector", "_data_parallel_size", "_composable",
        "_current_fx_name", "_compiled_call_impl", "_get_node", "_is_missing", "_is_none",
        "_is_interpolation", "_amp_foreach", "_step_supports_amp_scaling", "_return_value",
        "_computed", "_update_count", "_experiment", "_trainer",
    )  # fmt: skip
    pattern = re.compile(r"(?<![\w])(" + "|".join(names) + r")(?![\w])")
    found = []
    for path in (REPO / "src").rglob("*.py"):
        if path.name != "_internals.py":
            found += [f"{path.relative_to(REPO)}: {m}" for m in pattern.findall(path.read_text())]
    assert found == []
