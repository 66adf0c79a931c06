"""A native pre-norm Transformer encoder for sequence classification, built on torch's
scaled_dot_product_attention (flash/memory-efficient kernels where the device has them)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lightyard.errors import ConfigError

POSITIONS = ("learned", "sinusoidal")
POOLINGS = ("cls", "mean")


class TransformerBlock(nn.Module):
    """Pre-norm self-attention and MLP with residuals; `causal` makes it a decoder block (GPT)."""

    def __init__(
        self, d_model: int, num_heads: int, ff_dim: int, dropout: float, causal: bool = False
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ConfigError(
                f"model.d_model={d_model} must be divisible by model.num_heads={num_heads}"
            )
        self.num_heads = num_heads
        self.causal = causal
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ff_dim), nn.GELU(), nn.Linear(ff_dim, d_model), nn.Dropout(dropout)
        )
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """`keep` (batch, length) is True where a token is real; padded keys get no attention."""
        batch, length, width = x.shape
        q, k, v = (
            self.qkv(self.norm1(x))
            .view(batch, length, 3, self.num_heads, width // self.num_heads)
            .permute(2, 0, 3, 1, 4)
        )
        mask = None
        if keep is not None:
            mask = keep[:, None, None, :]
            if self.causal:
                mask = mask & torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        attended = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal and mask is None,
        )
        x = x + self.resid_dropout(
            self.proj(attended.transpose(1, 2).reshape(batch, length, width))
        )
        return x + self.mlp(self.norm2(x))


def sinusoidal_table(max_length: int, d_model: int) -> torch.Tensor:
    position = torch.arange(max_length).unsqueeze(1)
    scale = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_length, d_model)
    table[:, 0::2] = torch.sin(position * scale)
    table[:, 1::2] = torch.cos(position * scale[: d_model // 2])
    return table


class TokenEmbedding(nn.Module):
    """Token plus position embeddings (learned, or fixed sinusoids), then dropout."""

    def __init__(
        self, vocab_size: int, d_model: int, max_length: int, positions: str, dropout: float
    ) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise ConfigError(f"model.positions={positions!r}; allowed: {', '.join(POSITIONS)}")
        self.max_length = max_length
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions: nn.Module | None = None
        if positions == "learned":
            self.positions = nn.Embedding(max_length, d_model)
        else:
            self.register_buffer("table", sinusoidal_table(max_length, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        # GPT-2's small init: with unit-variance embeddings a tied output layer starts with huge
        # logits (a loss far above log(vocab_size))
        for weight in (self.tokens.weight, getattr(self.positions, "weight", None)):
            if weight is not None:
                nn.init.normal_(weight, std=0.02)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        if length > self.max_length:
            raise ValueError(
                f"sequence of {length} tokens is longer than model.max_length={self.max_length}"
            )
        index = torch.arange(length, device=input_ids.device)
        where = self.positions(index) if self.positions is not None else self.table[:length]
        return self.dropout(self.tokens(input_ids) + where)


class TransformerClassifier(nn.Module):
    """Embeddings, a stack of pre-norm blocks, a final norm, pooling ([CLS] token or masked mean)
    and a linear head."""

    input_kind = "tokens"
    block_classes: tuple[type[nn.Module], ...] = (TransformerBlock,)

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        max_length: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 256,
        dropout: float = 0.1,
        positions: str = "learned",
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"model.pooling={pooling!r}; allowed: {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.embed = TokenEmbedding(vocab_size, d_model, max_length, positions, dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, num_heads, ff_dim, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        keep = None if attention_mask is None else attention_mask.bool()
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x, keep)
        x = self.norm(x)
        if self.pooling == "cls":
            pooled = x[:, 0]
        elif keep is None:
            pooled = x.mean(dim=1)
        else:
            weights = keep.unsqueeze(-1).to(x.dtype)
            pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        return self.head(pooled)
