"""Framework overhead: the time of a training step under lightyard (its task, trainer and default
callbacks, as `train.py` builds them), under Lightning's own loop on a bare LightningModule, and
in a plain PyTorch loop, with the same backbone, data, batch, optimizer and precision, in one
process.

The loops take turns step by step. Each runs as a greenlet (a coroutine with its own stack, in
the one thread) and hands control back at the end of every step (a Lightning loop from its last
`on_train_batch_end`); a loop is timed from the moment it is resumed to its next hand-back, so
its time holds all it does between two steps (hooks, callbacks, logging, the periodic
checkpoint, fetching the batch) and nothing of the other loops. The order of the turns rotates
every step. A slow second on a shared machine then hits every loop alike, where separate runs of
each loop differ by more than the few per cent being measured (on this 2-core machine, by
10-30%). Means are over the steps after warm-up, trimmed of the slowest and fastest 5% (a
garbage collection, a page fault storm).

Lightning's bare loop is the floor: a LightningModule whose `training_step` only returns the
loss, the same optimizer, and a Trainer with a CSV logger, no progress bar, no checkpointing and
no summary. `lightyard_over_lightning_ms` is what lightyard adds on top of it.

The trainer is `train()`'s own (`build_fit_trainer`: default callbacks, exact resume, atomic
checkpoint writes), minus the three callbacks that act on validation or once per fit (best
checkpoint, early stopping, model summary): the benchmark runs no validation. Its periodic
checkpoint is set to save once within the measured steps.

`--breakdown` splits each loop's step into phases from its hooks (one timing callback in each
Lightning loop, marks in the plain one) and writes `overhead_breakdown.json` instead, which the
README's breakdown table shows; the ratios come from runs without it.

    python -m benchmarks.overhead --workloads tiny_cnn,small_cnn,cnn,transformer
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from benchmarks.common import compose_config, emit, machine, print_table


@dataclass(frozen=True)
class Workload:
    overrides: tuple[str, ...]
    batch: int
    kind: str  # image or tokens
    shape: tuple[int, ...] | None  # an image's or a sequence's; None: the data config's length
    steps: int  # measured steps (a whole number of logging intervals, every 10 steps)
    # targets: the ratio to the plain loop, and lightyard's cost over Lightning's bare loop
    min_ratio: float
    max_over_lightning_ms: float = 0.1
    # also measure the fast path (steps_per_batch=FAST_STEPS_PER_BATCH)
    fast: bool = False


# optimizer steps per Lightning batch on the fast path
FAST_STEPS_PER_BATCH = 8


def _cnn(channels: str, hidden: int, shape: tuple[int, int, int]) -> tuple[str, ...]:
    return (
        "model=cnn", f"model.channels={channels}", f"model.hidden={hidden}",
        f"data.channels={shape[0]}", f"data.image_size={shape[1]}", "data.num_classes=10",
    )  # fmt: skip


# name -> workload; the step times are this 2-core machine's plain loop
WORKLOADS = {
    # about 1 ms a step: where a GPU runs a small model, and where per-step host cost shows
    "tiny_cnn": Workload(_cnn("[8]", 16, (1, 8, 8)), 32, "image", (1, 8, 8), 2000, 0.75, fast=True),
    # about 8-15 ms a step
    "small_cnn": Workload(
        _cnn("[16,32]", 64, (1, 28, 28)), 64, "image", (1, 28, 28), 400, 0.9, fast=True
    ),
    # about 40-300 ms a step
    "cnn": Workload(
        ("model=cnn", "data.channels=3", "data.image_size=32", "data.num_classes=10"),
        128,
        "image",
        (3, 32, 32),
        200,
        0.985,
    ),  # fmt: skip
    "resnet": Workload(
        ("model=resnet", "data.channels=3", "data.num_classes=10"),
        64,
        "image",
        (3, 32, 32),
        60,
        0.985,
    ),  # fmt: skip
    "lstm": Workload(("model=lstm",), 64, "tokens", (128,), 60, 0.985),
    "transformer": Workload(("model=transformer",), 64, "tokens", None, 200, 0.985),
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


def _dataset(cfg, workload: Workload, n: int) -> Dataset:
    classes = int(cfg.data.num_classes)
    if workload.kind == "image":
        generator = torch.Generator().manual_seed(0)
        return TensorDataset(
            torch.randn(n, *workload.shape, generator=generator),
            torch.randint(0, classes, (n,), generator=generator),
        )
    length = workload.shape[0] if workload.shape else int(cfg.data.max_length)
    return _TokenBatches(n, length, int(cfg.data.vocab_size), classes)


def _forward(model, inputs):
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def _backbone(cfg) -> nn.Module:
    from hydra.utils import instantiate

    torch.manual_seed(0)  # every loop starts from the same weights
    return instantiate(cfg.model)


def _optimizer(cfg, parameters):
    """The optimizer lightyard's task builds, kernel choice included (fused AdamW), so that the
    ratios measure the loops and not an optimizer setting."""
    from hydra.utils import instantiate

    from lightyard.tasks.optim import with_fused_kernels

    return with_fused_kernels(instantiate(cfg.optimizer), "cpu")(parameters)


# --- taking turns ---------------------------------------------------------------------------------


class Turn:
    """A training loop run as a greenlet, one step per `step()`: the loop calls `pause()` at the
    end of each step, which switches back to the caller until it is resumed. Greenlets share
    their thread, so every loop runs on the same OpenMP thread team, as one training loop
    would: with a thread per loop, each thread's team spins on the 2 cores while the others
    run, and a 1 ms step took 7 ms."""

    def __init__(
        self, name: str, body: Callable[[Callable[[], None]], None], steps_per_turn: int = 1
    ) -> None:
        from greenlet import greenlet

        self.name = name
        self.body = body
        self.steps_per_turn = steps_per_turn  # optimizer steps between two pauses
        self.seconds: list[float] = []
        self.finished = False
        self._resumed = 0.0
        self._greenlet = greenlet(self._run)

    def _run(self) -> None:
        self._resumed = time.perf_counter()
        self.body(self.pause)
        self.finished = True

    def pause(self) -> None:
        self.seconds.append(time.perf_counter() - self._resumed)
        self._greenlet.parent.switch()
        self._resumed = time.perf_counter()

    def step(self) -> None:
        """Run the loop until its next pause or its end; its errors are raised here."""
        self._greenlet.switch()


def take_turns(turns: list[Turn], steps: int) -> None:
    """`steps` steps of every loop, rotating who goes first, then each loop runs to its end. A
    loop that takes several steps per turn takes its turn every that many rounds."""
    for step in range(steps):
        for i in range(len(turns)):
            turn = turns[(step + i) % len(turns)]
            if step % turn.steps_per_turn == 0:
                turn.step()
    for turn in turns:
        while not turn.finished:
            turn.step()


def trimmed_mean_ms(seconds: list[float], warmup: int, trim: float = 0.05) -> float:
    kept = sorted(seconds[warmup:])
    cut = int(len(kept) * trim)
    kept = kept[cut : len(kept) - cut] or kept
    return 1000 * sum(kept) / len(kept)


# --- the loops ------------------------------------------------------------------------------------


class Phases:
    """Seconds per phase of each step, from timestamps at the phase boundaries."""

    # "loop and data": from the previous step's end to this one's training_step (the loader,
    # moving the batch, the loop's bookkeeping and hooks); "optimizer step": from the end of
    # backward to the step's end (gradient checks and clipping, the update, zero_grad, hooks)
    NAMES = ("loop and data", "forward and loss", "backward", "optimizer step")

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.sums = dict.fromkeys(self.NAMES, 0.0)
        self.steps = 0  # steps ended, warm-up included
        self._last: float | None = None

    def mark(self, name: str | None) -> None:
        """The end of phase `name` (None: a resumption, which starts the next phase)."""
        now = time.perf_counter()
        if name is not None and self._last is not None and self.steps >= self.warmup:
            self.sums[name] += now - self._last
        self._last = now

    def end_step(self) -> None:
        self.steps += 1

    def per_step_ms(self) -> dict[str, float]:
        counted = max(1, self.steps - self.warmup)
        return {name: 1000 * total / counted for name, total in self.sums.items()}


def plain_loop(cfg, data: Dataset, batch: int, steps: int, phases: Phases | None):
    def body(pause) -> None:
        model = _backbone(cfg).train()
        optimizer = _optimizer(cfg, model.parameters())
        criterion = nn.CrossEntropyLoss()
        loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)
        mark = phases.mark if phases else (lambda name: None)
        with torch.enable_grad():
            for inputs, target in loader:
                mark("loop and data")
                loss = criterion(_forward(model, inputs), target)
                mark("forward and loss")
                loss.backward()
                mark("backward")
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                mark("optimizer step")
                if phases:
                    phases.end_step()
                pause()
                mark(None)

    return body


def _timing_callback(pause, phases: Phases | None):
    """The pause at each batch end, and the phase marks at Lightning's hooks (the first hooks
    of each kind: the callback goes first). Lightning zeroes the gradients between
    training_step and backward, so its "forward and loss" holds its zero_grad."""
    import lightning as L

    class Timing(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            if phases:
                phases.mark("loop and data")

        def on_before_backward(self, *args) -> None:
            if phases:
                phases.mark("forward and loss")

        def on_after_backward(self, *args) -> None:
            if phases:
                phases.mark("backward")

        def on_train_batch_end(self, *args) -> None:
            if phases:
                phases.mark("optimizer step")
                phases.end_step()
            pause()
            if phases:
                phases.mark(None)

    return Timing()


def lightning_loop(cfg, data: Dataset, batch: int, steps: int, phases: Phases | None):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    class Bare(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = _backbone(cfg)
            self.criterion = nn.CrossEntropyLoss()

        def training_step(self, batch, batch_idx):
            inputs, target = batch
            return self.criterion(_forward(self.backbone, inputs), target)

        def configure_optimizers(self):
            return _optimizer(cfg, self.parameters())

    def body(pause) -> None:
        with tempfile.TemporaryDirectory(prefix="lightyard-bench-bare-") as root:
            trainer = L.Trainer(
                accelerator="cpu", devices=1, max_steps=steps, max_epochs=-1,
                logger=CSVLogger(root), log_every_n_steps=10, enable_progress_bar=False,
                enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0,
                callbacks=[_timing_callback(pause, phases)], default_root_dir=root,
            )  # fmt: skip
            loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)
            trainer.fit(Bare(), train_dataloaders=loader)

    return body


def lightyard_loop(cfg, data: Dataset, batch: int, steps: int, phases: Phases | None):
    from lightyard.data.grouped import GroupedBatches
    from lightyard.runs.build import build_fit_trainer, build_task

    def body(pause) -> None:
        torch.manual_seed(0)
        task = build_task(cfg)
        trainer = build_fit_trainer(cfg, task, [_timing_callback(pause, phases)])
        # the timing callback goes first, so its phase marks come before the others' hooks
        callbacks = trainer.callbacks
        callbacks.insert(0, callbacks.pop())
        loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)
        if task.steps_per_batch > 1:
            loader = GroupedBatches(loader, task.steps_per_batch)  # as train() groups them
        trainer.fit(task, train_dataloaders=loader)

    return body


LOOPS = {"plain": plain_loop, "lightning": lightning_loop, "lightyard": lightyard_loop}
FAST = "lightyard_steps_per_batch"


def _config(workload: Workload, total: int, steps: int, *extra: str):
    """The workload's run config, in a directory of its own (loggers and checkpoints)."""
    return compose_config(
        [
            *workload.overrides,
            f"++trainer.max_steps={total}",
            f"callbacks.step_checkpoint.every_n_train_steps={steps}",
            "trainer.max_epochs=-1",
            "++trainer.limit_val_batches=0",
            "trainer.accelerator=cpu",
            "callbacks.model_checkpoint=null",
            "callbacks.early_stopping=null",
            "callbacks.model_summary=null",
            "trainer.enable_model_summary=false",
            "scheduler=none",
            *extra,
        ]
    )


def _take_turns_ms(turns: list[Turn], total: int, warmup: int) -> dict[str, float]:
    """ms per optimizer step of each loop, taking turns (warm-up steps left out): the trimmed
    mean under the loop's name, which holds the periodic work (logging steps, the checkpoint),
    and the median step under `<name>_median` (a step that neither logs nor saves)."""
    take_turns(turns, total)
    ms = {}
    for turn in turns:
        kept = turn.seconds[warmup // turn.steps_per_turn :]
        ms[turn.name] = trimmed_mean_ms(kept, 0) / turn.steps_per_turn
        ms[f"{turn.name}_median"] = 1000 * statistics.median(kept) / turn.steps_per_turn
    return ms


def measure(name: str, workload: Workload, warmup: int, steps: int, breakdown: bool) -> dict:
    total = warmup + steps
    cfg = _config(workload, total, steps)
    from lightyard.runs.process import prepare_process

    prepare_process(cfg)  # as train() does; process-wide, so every loop gains alike
    data = _dataset(cfg, workload, workload.batch * (total + 1))
    phases = {loop: Phases(warmup) if breakdown else None for loop in LOOPS}
    turns = [
        Turn(loop, make(cfg, data, workload.batch, total, phases[loop]))
        for loop, make in LOOPS.items()
    ]
    ms = _take_turns_ms(turns, total, warmup)
    fast = {}
    if workload.fast:
        # a round of its own: two rich progress bars cannot share the one console
        fast_cfg = _config(workload, total, steps, f"steps_per_batch={FAST_STEPS_PER_BATCH}")
        turns = [
            Turn("plain", plain_loop(cfg, data, workload.batch, total, None)),
            Turn("lightning", lightning_loop(cfg, data, workload.batch, total, None)),
            Turn(
                FAST,
                lightyard_loop(fast_cfg, data, workload.batch, total, None),
                steps_per_turn=FAST_STEPS_PER_BATCH,
            ),
        ]
        round_ms = _take_turns_ms(turns, total, warmup)
        fast = {
            "steps_per_batch": FAST_STEPS_PER_BATCH,
            f"{FAST}_ms_per_step": round_ms[FAST],
            f"{FAST}_ratio_to_plain": round_ms["plain"] / round_ms[FAST],
            f"{FAST}_over_lightning_ms": round_ms[FAST] - round_ms["lightning"],
        }
    result = {
        "batch": workload.batch,
        "steps": steps,
        **{f"{loop}_ms_per_step": value for loop, value in ms.items() if "_median" not in loop},
        **{f"{loop}_ms_median_step": ms[f"{loop}_median"] for loop in LOOPS},
        "ratio_to_plain": ms["plain"] / ms["lightyard"],
        "lightning_ratio_to_plain": ms["plain"] / ms["lightning"],
        "lightyard_over_lightning_ms": ms["lightyard"] - ms["lightning"],
        "lightyard_over_lightning_median_ms": ms["lightyard_median"] - ms["lightning_median"],
        **fast,
        "targets": {
            "min_ratio_to_plain": workload.min_ratio,
            "max_lightyard_over_lightning_ms": workload.max_over_lightning_ms,
        },
    }
    if breakdown:
        result["breakdown_ms"] = {loop: p.per_step_ms() for loop, p in phases.items()}
    return result


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}"
    )
    parser.add_argument("--backbones", help=argparse.SUPPRESS)  # the earlier name
    parser.add_argument("--steps", type=int, help="measured steps (default: per workload)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--breakdown", action="store_true", help="time each phase of a step")
    args = parser.parse_args()
    results, rows = {}, []
    for name in (args.backbones or args.workloads).split(","):
        workload = WORKLOADS[name]
        steps = args.steps or workload.steps
        result = results[name] = measure(name, workload, args.warmup, steps, args.breakdown)
        rows.append(
            [
                name,
                result["plain_ms_per_step"],
                result["lightning_ms_per_step"],
                result["lightyard_ms_per_step"],
                result["lightning_ratio_to_plain"],
                result["ratio_to_plain"],
                result["lightyard_over_lightning_ms"],
                result.get(f"{FAST}_ratio_to_plain", "-"),
            ]
        )
    print_table(
        "Framework overhead (ms a step; the loops take turns step by step)",
        ["workload", "plain", "Lightning bare", "lightyard", "Lightning/plain", "lightyard/plain",
         "lightyard - Lightning (ms)", f"steps_per_batch={FAST_STEPS_PER_BATCH} /plain"],
        rows,
    )  # fmt: skip
    if args.breakdown:
        for name, result in results.items():
            table = result["breakdown_ms"]
            print_table(
                f"{name}: ms a step by phase",
                ["phase", *table],
                [[phase, *(table[loop][phase] for loop in table)] for phase in Phases.NAMES],
            )
    result = {"machine": machine(), "results": results}
    emit("overhead_breakdown" if args.breakdown else "overhead", result)
    return result


if __name__ == "__main__":
    main()
