"""What your own model and data meet to run under lightyard, written as typing Protocols: nothing
needs to inherit from them (structural typing), and lightyard checks the parts it can read
before a run starts (lightyard.config.fit: input kinds; lightyard.config.components: each
`_target_`'s arguments; lightyard.config.interpolations: the keys one group reads of another).

A task (lightyard.tasks) owns the loss, metrics and optimisation and wraps a backbone, a plain
`torch.nn.Module`, built from the model group's config; a DataModule owns the data. They meet
through `input_kind`, a class attribute both declare (there is no default: an undeclared one is
reported), and the batches the DataModule yields:

- "image": batches (images (B, C, H, W) float, labels (B,) long); the backbone returns logits
  (B, num_classes); task=classification.
- "tokens": batches ({"input_ids": (B, T) long, "attention_mask": (B, T)}, labels (B,) long);
  logits (B, num_classes); task=classification.
- "lm": batches ({"input_ids": (B, T) long}, targets (B, T) long, -100 where nothing is
  predicted); logits (B, T, vocab_size); task=language_modeling.

A dict of inputs is passed as keyword arguments (`backbone(**inputs)`), a tensor positionally.

Keys other groups interpolate from the data group (give them in your data config when your
model's config reads them): `${data.num_classes}`, `${data.channels}`, `${data.image_size}`,
`${data.vocab_size}`, `${data.max_length}`, `${data.block_size}`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Iterable

    from torch import Tensor, nn

INPUT_KINDS = ("image", "tokens", "lm")
# data keys that model and task configs read through ${data.<key>}
INTERPOLATED_DATA_KEYS = (
    "num_classes", "channels", "image_size", "vocab_size", "max_length", "block_size",
)  # fmt: skip


@runtime_checkable
class ImageBackbone(Protocol):
    """input_kind "image": images (B, C, H, W) -> class logits (B, num_classes)."""

    input_kind: ClassVar[str]

    def __call__(self, images: Tensor) -> Tensor: ...


@runtime_checkable
class TokenBackbone(Protocol):
    """input_kind "tokens": token ids and their mask (1: a token, 0: padding) -> class logits
    (B, num_classes). Padded positions must not change the result."""

    input_kind: ClassVar[str]

    def __call__(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class LanguageModelBackbone(Protocol):
    """input_kind "lm": token ids (B, T) -> next-token logits (B, T, vocab_size), causal (a
    position sees only those before it). `max_length` (optional) bounds generation's window."""

    input_kind: ClassVar[str]

    def __call__(self, input_ids: Tensor) -> Tensor: ...


@runtime_checkable
class ShardedBackbone(Protocol):
    """Optional: the blocks FSDP wraps as units and activation checkpointing recomputes
    (trainer=fsdp); without it, lightyard picks the backbone's repeated child modules."""

    block_classes: ClassVar[tuple[type[nn.Module], ...]]


@runtime_checkable
class DataModule(Protocol):
    """A LightningDataModule (lightyard.data.base.SplitDataModule does the splitting, sharding
    under DDP and loaders for you: fill `self.datasets` in `setup`). Batches as the table in this
    module's docstring; `num_classes` (and `classes`, their names) for classification."""

    input_kind: ClassVar[str]

    def setup(self, stage: str | None = None) -> None: ...

    def train_dataloader(self) -> Iterable[Any]: ...

    def val_dataloader(self) -> Iterable[Any]: ...

    def test_dataloader(self) -> Iterable[Any]: ...
