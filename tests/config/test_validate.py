"""The validator: no false alarms on any shipped option, signatures read without importing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lightyard.config import validate
from lightyard.config.problems import did_you_mean
from lightyard.config.signatures import signature_of
from lightyard.errors import ConfigError
from tests.config.test_instantiate import OPTIONS
from tests.conftest import REPO, option_overrides


@pytest.mark.parametrize(
    ("group", "option"),
    OPTIONS,
    ids=[f"{g}={o}" for g, o in (getattr(p, "values", p) for p in OPTIONS)],
)
def test_every_shipped_option_is_valid(group, option, cfg_factory, local_datasets):
    overrides = option_overrides(group, option, local_datasets)
    if (group, option) == ("task", "language_modeling"):
        overrides.append("model=gpt")  # alone, with the default digits, it is rightly refused
    validate.check(cfg_factory(*overrides))


def test_problems_are_collected_not_stopped_at_the_first(cfg_factory):
    cfg = cfg_factory("optimizer.lr=-1", "data.batch_size=0", "+model.depth=2")
    with pytest.raises(ConfigError) as error:
        validate.check(cfg)
    text = str(error.value)
    assert "3 problems" in text
    for key in ("optimizer.lr", "data.batch_size", "model.depth"):
        assert f"\n{key}: " in text


def test_signatures_are_read_without_importing_torch():
    code = (
        "import sys\n"
        "from lightyard.config.signatures import signature_of\n"
        "for t in ['lightning.pytorch.Trainer', 'torch.optim.AdamW',\n"
        "          'lightning.pytorch.callbacks.ModelCheckpoint',\n"
        "          'lightyard.tasks.classification.ClassificationTask']:\n"
        "    assert signature_of(t) is not None, t\n"
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_signature_matches_the_imported_one():
    import inspect

    from lightning.pytorch.callbacks import EarlyStopping
    from torch.optim import SGD

    for target, obj in (
        ("torch.optim.SGD", SGD),
        ("lightning.pytorch.callbacks.EarlyStopping", EarlyStopping),
    ):
        real = [p for p in inspect.signature(obj).parameters if p not in ("self",)]
        assert list(signature_of(target).params) == real


def test_did_you_mean():
    assert did_you_mean("lrr", ["lr", "momentum"]) == "did you mean `lr`?"
    assert did_you_mean("zzz", ["lr"]) == ""


def test_a_datamodule_that_declares_no_input_kind_is_reported(cfg_factory, tmp_path, monkeypatch):
    """No silent default: a DataModule that says nothing of its batches never passes as images."""
    (tmp_path / "undeclared_data.py").write_text(
        "from lightyard.data.base import SplitDataModule\n\n"
        "class Undeclared(SplitDataModule):\n"
        "    def __init__(self, batch_size: int = 8, channels: int = 1, num_classes: int = 10):\n"
        "        super().__init__(batch_size, 0, False)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = cfg_factory("data._target_=undeclared_data.Undeclared")
    with pytest.raises(ConfigError) as error:
        validate.check(cfg)
    text = str(error.value)
    assert "undeclared_data.Undeclared declares no input_kind" in text
    assert 'input_kind = "image"' in text


def test_a_base_config_is_not_an_option():
    out = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "data=_tokens"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "data: `_tokens` is a base other data options are built on" in out.stderr
