"""Hugging Face BERT for sequence classification: pretrained weights from a name or local path,
or a small BERT built from config and trained from scratch (works offline)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification
from transformers.models.bert.modeling_bert import BertLayer

from lightyard.errors import ConfigError


class BertClassifier(nn.Module):
    """Returns logits; the sizes apply only when no `pretrained` source is given."""

    input_kind = "tokens"
    block_classes: tuple[type[nn.Module], ...] = (BertLayer,)

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        pretrained: str | None = None,
        max_length: int = 128,
        hidden_size: int = 128,
        num_layers: int = 2,
        num_heads: int = 2,
        intermediate_size: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if pretrained:
            try:
                self.bert = BertForSequenceClassification.from_pretrained(
                    pretrained, num_labels=num_classes, ignore_mismatched_sizes=True
                )
            except OSError as error:
                raise ConfigError(
                    f"model.pretrained={pretrained!r} could not be loaded: {error}. Give a local "
                    "directory saved with save_pretrained, or a Hub name already in the HF cache "
                    "(nothing is downloaded when HF_HUB_OFFLINE=1)"
                ) from None
            return
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=intermediate_size,
            max_position_embeddings=max_length,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            num_labels=num_classes,
        )
        self.bert = BertForSequenceClassification(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).logits
