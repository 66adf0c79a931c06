"""Recurrent classifiers (Elman RNN, LSTM, GRU) over token ids. Sequences are packed by their
true lengths, so padding never enters the recurrence."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lightyard.errors import ConfigError

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class HostLengths:
    """Sequence lengths kept on the host. pack_padded_sequence needs them there, and reading
    them from a batch on the device would wait for the device on every step; the task computes
    them from the batch before it moves (Task.on_before_batch_transfer), and Lightning's batch
    transfer leaves what is neither a tensor nor a collection (a dataclass is one) where it is."""

    __slots__ = ("values",)

    def __init__(self, values: torch.Tensor) -> None:
        self.values = values


def with_host_lengths(batch):
    """`batch` with the HostLengths of every inputs dict that has an attention mask, added as
    `lengths` (batches, groups of them and prediction batches alike)."""
    if isinstance(batch, dict):
        if "attention_mask" in batch and "input_ids" in batch:
            if "lengths" in batch:
                return batch
            lengths = batch["attention_mask"].sum(dim=1).clamp(min=1)
            return {**batch, "lengths": HostLengths(lengths)}
        return {key: with_host_lengths(value) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(with_host_lengths(item) for item in batch)
    return batch


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
    # the task adds `lengths` (HostLengths) to each batch before it moves to the device
    reads_host_lengths = True
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

    def for_export(self) -> nn.Module:
        """The same function without packed sequences, which exporters cannot trace."""
        return PaddedRecurrentClassifier(self)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        lengths: HostLengths | None = None,
    ):
        batch, length = input_ids.shape
        if lengths is not None:
            lengths = lengths.values
        elif attention_mask is None:
            lengths = torch.full((batch,), length, dtype=torch.long)
        else:  # called without the task: the lengths come back from the device
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


def _one_direction(rnn: nn.RNNBase, suffix: str) -> nn.RNNBase:
    """A one-way copy of one direction of a (bi)directional single-layer `rnn`."""
    kwargs = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
    copy = type(rnn)(rnn.input_size, rnn.hidden_size, batch_first=True, **kwargs)
    copy.load_state_dict(
        {
            name: getattr(rnn, name.replace("_l0", suffix)).detach().clone()
            for name in copy.state_dict()
        }
    )
    return copy


class PaddedRecurrentClassifier(nn.Module):
    """The same function as a RecurrentClassifier in eval mode, on padded batches with no packed
    sequences (which exporters cannot trace): the forward direction runs over the padding after
    each sequence (outputs there are never read), and the backward direction runs over each
    sequence reversed within its own length, so it starts at the sequence's last real token.
    Exporters (ONNX, TorchScript) see only tensor ops with dynamic batch and sequence length."""

    def __init__(self, model: RecurrentClassifier) -> None:
        super().__init__()
        self.pooling = model.pooling
        self.embed = model.embed
        self.head = model.head
        self.forward_cells = nn.ModuleList(
            _one_direction(layer.rnn, "_l0") for layer in model.layers
        )
        self.backward_cells = nn.ModuleList(
            _one_direction(layer.rnn, "_l0_reverse")
            for layer in model.layers
            if layer.rnn.bidirectional
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        lengths = attention_mask.sum(dim=1).clamp(min=1)
        positions = torch.arange(length, device=input_ids.device)[None, :]
        keep = positions < lengths[:, None]
        # reversal within each sequence's length (its own inverse); padding stays in place
        reverse = torch.where(keep, lengths[:, None] - 1 - positions, positions)
        last = (lengths - 1)[:, None, None]
        x = self.embed(input_ids)
        final = x
        for index, cell in enumerate(self.forward_cells):
            ahead = cell(x)[0]
            finals = [ahead.gather(1, last.expand(-1, 1, ahead.shape[-1])).squeeze(1)]
            outputs = [ahead]
            if self.backward_cells:
                flip = reverse[:, :, None].expand(-1, -1, x.shape[-1])
                behind_reversed = self.backward_cells[index](x.gather(1, flip))[0]
                width = behind_reversed.shape[-1]
                finals.append(behind_reversed.gather(1, last.expand(-1, 1, width)).squeeze(1))
                unflip = reverse[:, :, None].expand(-1, -1, width)
                outputs.append(behind_reversed.gather(1, unflip))
            x = torch.cat(outputs, dim=-1)
            final = torch.cat(finals, dim=-1)
        if self.pooling == "last":
            pooled = final
        elif self.pooling == "mean":
            mask = keep.unsqueeze(-1).to(x.dtype)
            pooled = (x * mask).sum(dim=1) / mask.sum(dim=1)
        else:
            pooled = x.masked_fill(~keep.unsqueeze(-1), float("-inf")).amax(dim=1)
        return self.head(pooled)
