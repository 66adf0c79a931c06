"""Framework overhead: training steps/s of lightyard (its task, trainer and default callbacks, as
`train.py` builds them) against a plain PyTorch loop with the same backbone, data, batch,
optimizer and precision, in one process. Rounds alternate so machine noise hits both alike.

    python -m benchmarks.overhead --backbones cnn --steps 60 --rounds 3
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from benchmarks.common import compose_config, emit, machine, median, print_table

# name -> (overrides, batch size, input kind, input shape)
WORKLOADS = {
    "cnn": (["model=cnn", "data.channels=3", "data.num_classes=10"], 128, "image", (3, 32, 32)),
    "resnet": (
        ["model=resnet", "data.channels=3", "data.num_classes=10"],
        64,
        "image",
        (3, 32, 32),
    ),
    "lstm": (["model=lstm"], 64, "tokens", (128,)),
    "transformer": (["model=transformer"], 64, "tokens", None),
}


class _TokenBatches(Dataset):
    """Random token ids with ragged lengths (so padding and masks are exercised) and labels."""

    def __init__(self, n: int, length: int, vocab: int, classes: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, vocab, (n, length), generator=generator)
        self.lengths = torch.randint(length // 2, length + 1, (n,), generator=generator)
        self.labels = torch.randint(0, classes, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        mask = (torch.arange(self.ids.shape[1]) < self.lengths[i]).long()
        return {"input_ids": self.ids[i] * mask, "attention_mask": mask}, self.labels[i]


def _loader(cfg, kind: str, shape, batch: int, batches: int) -> DataLoader:
    n = batch * batches
    classes = int(cfg.data.num_classes)
    if kind == "image":
        generator = torch.Generator().manual_seed(0)
        data = TensorDataset(
            torch.randn(n, *shape, generator=generator),
            torch.randint(0, classes, (n,), generator=generator),
        )
    else:
        length = shape[0] if shape else int(cfg.data.max_length)
        data = _TokenBatches(n, length, int(cfg.data.vocab_size), classes)
    return DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)


def _forward(model, inputs):
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


class _StepClock:
    """Wall time from the end of the warm-up steps to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def tick(self) -> None:
        self.steps += 1
        now = time.perf_counter()
        if self.steps == self.warmup:
            self.start = now
        self.end = now

    def per_second(self) -> float:
        return (self.steps - self.warmup) / (self.end - self.start)


def plain_loop(cfg, loader: DataLoader, steps: int, warmup: int) -> float:
    from hydra.utils import instantiate

    torch.manual_seed(0)
    model = instantiate(cfg.model)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    criterion = nn.CrossEntropyLoss()
    clock = _StepClock(warmup)
    model.train()
    while clock.steps < steps:
        for inputs, target in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(_forward(model, inputs), target)
            loss.backward()
            optimizer.step()
            clock.tick()
            if clock.steps >= steps:
                break
    return clock.per_second()


def lightyard_loop(cfg, loader: DataLoader, steps: int, warmup: int) -> float:
    import lightning as L

    from lightyard.run import build_task, build_trainer, instantiate_all

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.clock = _StepClock(warmup)

        def on_train_batch_end(self, *args, **kwargs) -> None:
            self.clock.tick()

    torch.manual_seed(0)
    task = build_task(cfg)
    clock = Clock()
    callbacks = instantiate_all(cfg.callbacks, "callbacks") + [clock]
    trainer = build_trainer(cfg, callbacks)
    trainer.fit(task, train_dataloaders=loader)
    return clock.clock.per_second()


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbones", default="cnn", help=f"comma list of {', '.join(WORKLOADS)}")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    results, rows = {}, []
    for name in args.backbones.split(","):
        overrides, batch, kind, shape = WORKLOADS[name]
        cfg = compose_config(
            [
                *overrides,
                f"++trainer.max_steps={args.steps}",
                "trainer.max_epochs=-1",
                "++trainer.limit_val_batches=0",
                "trainer.accelerator=cpu",
                "callbacks.model_checkpoint=null",
                "callbacks.early_stopping=null",
                "callbacks.model_summary=null",
                "scheduler=none",
            ]
        )
        loader = _loader(cfg, kind, shape, batch, batches=args.steps)
        plain, framework = [], []
        for _ in range(args.rounds):
            plain.append(plain_loop(cfg, loader, args.steps, args.warmup))
            framework.append(lightyard_loop(cfg, loader, args.steps, args.warmup))
        ratio = median([f / p for f, p in zip(framework, plain, strict=True)])
        results[name] = {
            "plain_steps_per_s": median(plain),
            "lightyard_steps_per_s": median(framework),
            "ratio": ratio,
            "batch": batch,
        }
        rows.append([name, median(plain), median(framework), ratio])
    print_table(
        "Framework overhead (steps/s, median of alternating rounds)",
        ["backbone", "plain torch", "lightyard", "ratio"],
        rows,
    )
    result = {"machine": machine(), "steps": args.steps, "rounds": args.rounds, "results": results}
    emit("overhead", result)
    return result


if __name__ == "__main__":
    main()
