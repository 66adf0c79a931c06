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
