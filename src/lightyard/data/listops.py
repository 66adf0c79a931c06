"""ListOps (Nangia & Bowman, 2018): nested list operations over digits, e.g.
`[MAX 2 9 [MIN 4 7 ] 0 ]` -> 9. A classical generated benchmark for sequence models: the answer
(one of ten digits) needs the whole tree, so a model must carry state across the sequence."""

from __future__ import annotations

import random
import statistics
from typing import Any

from lightyard.data.text_sources import RawSplit

OPERATORS = {
    "[MAX": max,
    "[MIN": min,
    "[MED": lambda values: int(statistics.median_low(values)),
    "[SM": lambda values: sum(values) % 10,
}


def _expression(rng: random.Random, depth: int, max_depth: int, max_args: int) -> tuple[list, int]:
    """Tokens and value of one random expression tree."""
    if depth >= max_depth or (depth > 0 and rng.random() < 0.35):
        digit = rng.randrange(10)
        return [str(digit)], digit
    operator = rng.choice(list(OPERATORS))
    tokens, values = [operator], []
    for _ in range(rng.randint(2, max_args)):
        child_tokens, value = _expression(rng, depth + 1, max_depth, max_args)
        tokens += child_tokens
        values.append(value)
    return tokens + ["]"], OPERATORS[operator](values)


class ListOpsSource:
    """Seeded, so every run (and the cache key) sees the same sets."""

    def __init__(
        self,
        num_train: int = 6000,
        num_val: int = 1000,
        num_test: int = 1000,
        max_depth: int = 3,
        max_args: int = 4,
        max_tokens: int = 64,
        seed: int = 0,
    ) -> None:
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.max_depth = max_depth
        self.max_args = max_args
        self.max_tokens = max_tokens
        self.seed = seed

    def fingerprint(self) -> dict[str, Any]:
        return {
            "listops": self.sizes,
            "shape": [self.max_depth, self.max_args, self.max_tokens],
            "seed": self.seed,
        }

    def load(self) -> dict[str, RawSplit]:
        rng = random.Random(self.seed)
        splits = {}
        for split, size in self.sizes.items():
            texts, labels = [], []
            while len(texts) < size:
                tokens, value = _expression(rng, 0, self.max_depth, self.max_args)
                if len(tokens) <= self.max_tokens:
                    texts.append(" ".join(tokens))
                    labels.append(value)
            splits[split] = RawSplit(texts, labels)
        return splits
