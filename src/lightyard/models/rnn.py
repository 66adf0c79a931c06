"""Recurrent classifiers (Elman RNN, LSTM, GRU) over token ids. Sequences are packed by their
true lengths, so padding never enters the recurrence."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lightyard.errors import ConfigError

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
POOLINGS = ("last", "mean", "max")


class RecurrentLayer(nn.Module):
    """One recurrent layer; the stack keeps each as its own module (FSDP units, checkpointing)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, bidirectional: bool) -> None:
        super().__init__()
        self.rnn = CELLS[cell](
            input_size, hidden_size, batch_first=True, bidirectional=bidirectional
        )

    def forward(self, packed: PackedSequence) -> tuple[PackedSequence, torch.Tensor]:
        output, hidden = self.rnn(packed)
        if isinstance(hidden, tuple):  # LSTM: (h, c)
            hidden = hidden[0]
        # final state of each direction, side by side: (batch, directions x hidden)
        return output, torch.cat(list(hidden), dim=-1)


class RecurrentClassifier(nn.Module):
    input_kind = "tokens"
    block_classes: tuple[type[nn.Module], ...] = (RecurrentLayer,)

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        cell: str = "lstm",
        embed_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.1,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(f"model.cell={cell!r}; allowed: {', '.join(CELLS)}")
        if pooling not in POOLINGS:
            raise ConfigError(f"model.pooling={pooling!r}; allowed: {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.embed = nn.Embedding(vocab_size, embed_dim)
        directions = 2 if bidirectional else 1
        self.layers = nn.ModuleList(
            RecurrentLayer(
                cell, embed_dim if i == 0 else hidden_size * directions, hidden_size, bidirectional
            )
            for i in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * directions, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        batch, length = input_ids.shape
        if attention_mask is None:
            lengths = torch.full((batch,), length, dtype=torch.long)
        else:
            lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()
        x = self.dropout(self.embed(input_ids))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        for index, layer in enumerate(self.layers):
            if index > 0:  # dropout between layers, on the packed values only
                packed = packed._replace(data=self.dropout(packed.data))
            packed, final = layer(packed)
        if self.pooling == "last":
            pooled = final
        else:
            padded, _ = pad_packed_sequence(packed, batch_first=True, total_length=length)
            keep = (
                torch.arange(length, device=padded.device)[None, :]
                < lengths.to(padded.device)[:, None]
            ).unsqueeze(-1)
            if self.pooling == "mean":
                pooled = (padded * keep).sum(dim=1) / keep.sum(dim=1)
            else:
                pooled = padded.masked_fill(~keep, float("-inf")).amax(dim=1)
        return self.head(self.dropout(pooled))
