"""Several loaded batches per Lightning batch: the `steps_per_batch` fast path (tasks.base) takes
one optimizer step per batch of a group, so Lightning's per-batch cost (its loop, hooks,
callbacks and logging) is paid once per group."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any


class GroupedBatches:
    """Yields lists of `size` consecutive batches of `loader` (the epoch's last list may be
    shorter): the same batches in the same order, only handed over together. The position
    saved in checkpoints is the loader's own (state_dict), so a resumed run goes on exactly."""

    def __init__(self, loader: Iterable, size: int) -> None:
        self.loader = loader
        self.size = size

    def __iter__(self) -> Iterator[list[Any]]:
        group: list[Any] = []
        for batch in self.loader:
            group.append(batch)
            if len(group) == self.size:
                yield group
                group = []
        if group:
            yield group

    def __len__(self) -> int:
        return math.ceil(len(self.loader) / self.size)

    def state_dict(self) -> dict[str, Any]:
        """The loader's position ({} for a loader that keeps none, e.g. torch's DataLoader)."""
        saved = getattr(self.loader, "state_dict", None)
        return saved() if saved is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.loader.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:
        # what Lightning reads of a loader (dataset, sampler, batch_size, ...) is the loader's
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)
