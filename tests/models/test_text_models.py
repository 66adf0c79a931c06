"""Sequence backbones: padding never changes logits, the repeated blocks are declared, and
the causal model cannot see the future."""

from __future__ import annotations

import pytest
import torch

from lightyard.models.bert import BertClassifier
from lightyard.models.gpt import GPT
from lightyard.models.rnn import RecurrentClassifier, RecurrentLayer
from lightyard.models.transformer import TransformerBlock, TransformerClassifier

VOCAB = 40


def _batch_and_longer_padding(pad_id: int = 0):
    torch.manual_seed(0)
    ids = torch.randint(5, VOCAB, (4, 9))
    mask = torch.ones_like(ids)
    for row, length in enumerate((9, 3, 6, 1)):
        mask[row, length:] = 0
        ids[row, length:] = pad_id
    extra = torch.full((4, 7), pad_id)
    return (ids, mask), (torch.cat([ids, extra], 1), torch.cat([mask, torch.zeros_like(extra)], 1))


BACKBONES = {
    **{
        f"{cell}-{pooling}": (
            lambda cell=cell, pooling=pooling: RecurrentClassifier(
                VOCAB, 3, cell=cell, num_layers=2, pooling=pooling
            )
        )
        for cell in ("rnn", "lstm", "gru")
        for pooling in ("last", "mean", "max")
    },
    "transformer-cls-learned": lambda: TransformerClassifier(VOCAB, 3, 32, d_model=32),
    "transformer-mean-sinusoidal": lambda: TransformerClassifier(
        VOCAB, 3, 32, d_model=32, pooling="mean", positions="sinusoidal"
    ),
    "bert": lambda: BertClassifier(VOCAB, 3, max_length=32, hidden_size=32, intermediate_size=64),
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_padding_does_not_change_logits(name):
    model = BACKBONES[name]().eval()
    (ids, mask), (longer_ids, longer_mask) = _batch_and_longer_padding()
    with torch.no_grad():
        short = model(input_ids=ids, attention_mask=mask)
        longer = model(input_ids=longer_ids, attention_mask=longer_mask)
        # padding with another token id changes nothing either: the mask alone decides
        other_pad = model(
            input_ids=longer_ids.masked_fill(longer_mask == 0, 7), attention_mask=longer_mask
        )
    assert short.shape == (4, 3)
    torch.testing.assert_close(short, longer, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short, other_pad, atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_causal_logits():
    model = GPT(VOCAB, 32, d_model=32, num_heads=4).eval()
    (ids, mask), (longer_ids, longer_mask) = _batch_and_longer_padding()
    with torch.no_grad():
        short = model(ids, mask)
        longer = model(longer_ids, longer_mask)
    keep = mask.bool()
    torch.testing.assert_close(short[keep], longer[:, :9][keep], atol=1e-5, rtol=1e-5)


def test_causal_model_does_not_see_the_future():
    model = GPT(VOCAB, 16, d_model=32).eval()
    ids = torch.randint(0, VOCAB, (2, 10))
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % VOCAB
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[:, :6], model(changed)[:, :6])
        assert not torch.allclose(model(ids)[:, 6:], model(changed)[:, 6:])


@pytest.mark.parametrize(
    ("model", "block"),
    [
        (lambda: RecurrentClassifier(VOCAB, 3, num_layers=3), RecurrentLayer),
        (lambda: TransformerClassifier(VOCAB, 3, 16, num_layers=3), TransformerBlock),
        (lambda: GPT(VOCAB, 16, num_layers=3), TransformerBlock),
        (lambda: BertClassifier(VOCAB, 3, num_layers=3, hidden_size=32, num_heads=2), None),
    ],
)
def test_block_classes_name_the_repeated_layers(model, block):
    module = model()
    found = [m for m in module.modules() if isinstance(m, module.block_classes)]
    assert len(found) == 3
    if block is not None:
        assert module.block_classes == (block,)


def test_bad_choices_are_config_errors():
    from lightyard.errors import ConfigError

    with pytest.raises(ConfigError, match="model.cell='elman'; allowed: rnn, lstm, gru"):
        RecurrentClassifier(VOCAB, 3, cell="elman")
    with pytest.raises(ConfigError, match="divisible"):
        TransformerClassifier(VOCAB, 3, 16, d_model=30, num_heads=4)
    with pytest.raises(ConfigError, match="model.pooling"):
        TransformerClassifier(VOCAB, 3, 16, pooling="max")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_the_export_form_of_a_recurrent_model_equals_the_packed_one(cell, pooling, bidirectional):
    """No packed sequences (exporters cannot trace them), the same logits: the backward
    direction starts at each sequence's own last token, padding never enters."""
    torch.manual_seed(0)
    model = RecurrentClassifier(
        50, 3, cell=cell, embed_dim=8, hidden_size=6, num_layers=2,
        bidirectional=bidirectional, pooling=pooling,
    ).eval()  # fmt: skip
    ids = torch.randint(1, 50, (4, 9))
    mask = torch.ones(4, 9, dtype=torch.long)
    for row, length in enumerate([9, 5, 1, 7]):
        mask[row, length:] = 0
        ids[row, length:] = 0
    exported = model.for_export().eval()
    with torch.no_grad():
        torch.testing.assert_close(exported(ids, mask), model(ids, mask), atol=1e-6, rtol=0)
