"""Hugging Face BERT for sequence classification: pretrained weights from a name or local path,
or a small BERT built from config and trained from scratch (works offline); LoRA adapters
through peft for fine-tuning a pretrained one cheaply."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification
from transformers.models.bert.modeling_bert import BertLayer

from lightyard.config.lora import lora_problems
from lightyard.errors import ConfigError


def with_lora(model: nn.Module, settings: dict[str, Any]) -> nn.Module:
    """`model` with LoRA adapters (peft) on `target_modules`; only the adapters and the
    classification head train."""
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError:
        raise ConfigError(
            "model.lora.r > 0 needs peft, which is not installed. Allowed: an environment "
            "with lightyard[lora]. Fix: pip install 'lightyard[lora]', or model.lora.r=0"
        ) from None
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=int(settings["r"]),
        lora_alpha=int(settings.get("alpha", 16)),
        lora_dropout=float(settings.get("dropout", 0.0)),
        target_modules=list(settings.get("target_modules") or ["query", "value"]),
    )
    try:
        return get_peft_model(model, config)
    except ValueError as error:  # e.g. target modules that are not in the model
        raise ConfigError(
            f"model.lora: {error}. Allowed: names of BERT's linear layers (query, key, value, "
            "dense). Fix: set model.lora.target_modules"
        ) from None


class BertClassifier(nn.Module):
    """Returns logits; the sizes apply only when no `pretrained` source is given. With
    `lora.r` > 0 the pretrained weights stay frozen and checkpoints hold only what trains
    (the adapters and the head): the frozen rest is reloaded from `pretrained`."""

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
        lora: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.lora = dict(lora or {})
        if problems := lora_problems(self.lora):
            key, problem, allowed, fix = problems[0]
            raise ConfigError(f"{key}: {problem}. Allowed: {allowed}. Fix: {fix}.")
        # frozen weights may be left out of checkpoints only when they can be reloaded
        self.saves_frozen_weights = True
        self.bert = self._build(
            vocab_size, num_classes, pretrained, max_length, hidden_size, num_layers,
            num_heads, intermediate_size, dropout,
        )  # fmt: skip
        if int(self.lora.get("r") or 0) > 0:
            self.bert = with_lora(self.bert, self.lora)
            self.saves_frozen_weights = not pretrained

    @staticmethod
    def _build(
        vocab_size, num_classes, pretrained, max_length, hidden_size, num_layers, num_heads,
        intermediate_size, dropout,
    ) -> nn.Module:  # fmt: skip
        if pretrained:
            try:
                return BertForSequenceClassification.from_pretrained(
                    pretrained,
                    num_labels=num_classes,
                    ignore_mismatched_sizes=True,
                    attn_implementation="sdpa",
                )
            except OSError as error:
                raise ConfigError(
                    f"model.pretrained={pretrained!r} could not be loaded: {error}. Give a local "
                    "directory saved with save_pretrained, or a Hub name already in the HF cache "
                    "(nothing is downloaded when HF_HUB_OFFLINE=1)"
                ) from None
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
            attn_implementation="sdpa",
        )
        return BertForSequenceClassification(config)

    def merged(self) -> nn.Module:
        """The plain Hugging Face model, LoRA adapters merged into its weights (a copy)."""
        if not hasattr(self.bert, "merge_and_unload"):
            return self.bert
        return copy.deepcopy(self.bert).merge_and_unload()

    def for_export(self) -> nn.Module:
        """Logits of the plain model, adapters merged in: what exporters trace."""
        return BertLogits(self.merged())

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if attention_mask is not None and attention_mask.dim() == 2:
            # the (batch, 1, 1, length) mask SDPA reads (True: attend) that transformers would
            # build itself, after reading the mask's values to see whether it may drop it (a
            # host-device sync on every step); a prepared 4D mask is used as it is
            attention_mask = attention_mask[:, None, None, :].bool()
        return self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).logits


class BertLogits(nn.Module):
    """A Hugging Face sequence classifier's logits from (input_ids, attention_mask)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits
