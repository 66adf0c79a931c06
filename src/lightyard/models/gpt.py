"""A causal Transformer language model (GPT): the encoder's blocks with a causal mask, and an
output layer tied to the token embedding."""

from __future__ import annotations

import torch
from torch import nn

from lightyard.models.transformer import TokenEmbedding, TransformerBlock


class GPT(nn.Module):
    """Returns next-token logits of shape (batch, length, vocab_size)."""

    input_kind = "lm"
    block_classes: tuple[type[nn.Module], ...] = (TransformerBlock,)

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 512,
        dropout: float = 0.1,
        positions: str = "learned",
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        self.max_length = max_length
        self.embed = TokenEmbedding(vocab_size, d_model, max_length, positions, dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, num_heads, ff_dim, dropout, causal=True)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:
            self.lm_head.weight = self.embed.tokens.weight

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        # no data-dependent branch here (it would wait for the GPU): packed blocks send no mask
        keep = None if attention_mask is None else attention_mask.bool()
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x, keep)
        return self.lm_head(self.norm(x))
