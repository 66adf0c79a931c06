"""Framework overhead: training steps/s of lightyard (its task, trainer and default callbacks, as
`train.py` builds them) against a plain PyTorch loop with the same backbone, data, batch,
optimizer and precision, in one process.

The two loops take turns step by step: at the end of each lightyard step a callback runs one
step of the plain loop (its own model, optimizer and batches), timed apart. A lightyard step is
the wall time from the end of one plain step to the next batch end, so it holds all the
framework does between steps (hooks, callbacks, logging, one step checkpoint) and nothing of
the plain loop. A slow second on a shared machine then hits both loops alike; separate runs of
each loop differ by more than the 3% being measured.

The trainer is `train()`'s own (`build_fit_trainer`: default callbacks, exact resume, atomic
checkpoint writes), minus the three callbacks that act on validation or once per fit (best
checkpoint, early stopping, model summary): the benchmark runs no validation.

    python -m benchmarks.overhead --backbones cnn,lstm,transformer
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from benchmarks.common import compose_config, emit, machine, print_table

# name -> (overrides, batch size, input kind, input shape, measured steps): the fast workloads
# (about 70 ms a step here) take 300 steps, the slow ones 100, about 40-100 s of each loop
WORKLOADS = {
    "cnn": (
        ["model=cnn", "data.channels=3", "data.image_size=32", "data.num_classes=10"],
        128,
        "image",
        (3, 32, 32),
        300,
    ),
    "resnet": (
        ["model=resnet", "data.channels=3", "data.num_classes=10"],
        64,
        "image",
        (3, 32, 32),
        100,
    ),
    "lstm": (["model=lstm"], 64, "tokens", (128,), 100),
    "transformer": (["model=transformer"], 64, "tokens", None, 300),
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


class PlainStep:
    """One step of a plain PyTorch training loop per call: its own copy of the backbone (same
    seed, so the same weights), optimizer and pass over the batches. The optimizer is the one
    lightyard's task builds, kernel choice included (fused AdamW), so that the ratio measures
    the framework and not an optimizer setting."""

    def __init__(self, cfg, loader: DataLoader) -> None:
        from hydra.utils import instantiate

        from lightyard.tasks.optim import with_fused_kernels

        torch.manual_seed(0)
        self.model = instantiate(cfg.model).train()
        factory = with_fused_kernels(instantiate(cfg.optimizer), "cpu")
        self.optimizer = factory(self.model.parameters())
        self.criterion = nn.CrossEntropyLoss()
        self.loader = loader
        self.batches = iter(loader)

    def __call__(self) -> float:
        """Seconds the step took, fetching its batch included."""
        start = time.perf_counter()
        with torch.enable_grad():
            try:
                inputs, target = next(self.batches)
            except StopIteration:
                self.batches = iter(self.loader)
                inputs, target = next(self.batches)
            loss = self.criterion(_forward(self.model, inputs), target)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def interleaved(cfg, loader: DataLoader, steps: int, warmup: int) -> tuple[float, float]:
    """(plain steps/s, lightyard steps/s) over the steps after `warmup`, taken in turns."""
    import lightning as L

    from lightyard.runs.build import build_fit_trainer, build_task
    from lightyard.runs.process import prepare_process

    prepare_process(cfg)  # as train() does; process-wide, so the plain loop gains alike
    plain = PlainStep(cfg, loader)

    class TakeTurns(L.Callback):
        def __init__(self) -> None:
            self.plain_s: list[float] = []
            self.framework_s: list[float] = []
            self.resumed = 0.0

        def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
            ended = time.perf_counter()
            counted = trainer.global_step > warmup
            if counted:
                self.framework_s.append(ended - self.resumed)
            seconds = plain()
            if counted:
                self.plain_s.append(seconds)
            self.resumed = time.perf_counter()

    torch.manual_seed(0)
    task = build_task(cfg)
    turns = TakeTurns()
    trainer = build_fit_trainer(cfg, task, [turns])
    trainer.fit(task, train_dataloaders=loader)
    return len(turns.plain_s) / sum(turns.plain_s), len(turns.framework_s) / sum(turns.framework_s)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbones", default="cnn", help=f"comma list of {', '.join(WORKLOADS)}")
    # measured steps are a whole number of logging intervals (every 10 steps); the step
    # checkpoint is set to save once within them (more often than its default, every 500)
    parser.add_argument(
        "--steps", type=int, default=None, help="measured steps per loop (default: per backbone)"
    )
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    results, rows = {}, []
    for name in args.backbones.split(","):
        overrides, batch, kind, shape, steps = WORKLOADS[name]
        steps = args.steps or steps
        cfg = compose_config(
            [
                *overrides,
                f"++trainer.max_steps={args.warmup + steps}",
                f"callbacks.step_checkpoint.every_n_train_steps={steps}",
                "trainer.max_epochs=-1",
                "++trainer.limit_val_batches=0",
                "trainer.accelerator=cpu",
                "callbacks.model_checkpoint=null",
                "callbacks.early_stopping=null",
                "callbacks.model_summary=null",
                "trainer.enable_model_summary=false",
                "scheduler=none",
            ]
        )
        loader = _loader(cfg, kind, shape, batch, batches=args.warmup + steps)
        plain, framework = interleaved(cfg, loader, steps, args.warmup)
        results[name] = {
            "plain_steps_per_s": plain,
            "lightyard_steps_per_s": framework,
            "ratio": framework / plain,
            "batch": batch,
            "steps": steps,
        }
        rows.append([name, plain, framework, framework / plain])
    print_table(
        "Framework overhead (steps/s, the two loops taking turns step by step)",
        ["backbone", "plain torch", "lightyard", "ratio"],
        rows,
    )
    result = {"machine": machine(), "results": results}
    emit("overhead", result)
    return result


if __name__ == "__main__":
    main()
