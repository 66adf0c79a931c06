"""GPU throughput: tokens/s, model FLOPs utilisation (MFU) and peak memory of the gpt and bert
backbones trained through lightyard (its task, trainer and callbacks) with bf16-mixed,
torch.compile and fused AdamW. FLOPs per batch are counted by torch's FLOP counter on the meta
device (lightyard.callbacks.throughput), the peak is Lightning's table for the device.
Target: MFU >= 40% for gpt at sequence length 1024 on an H100.

    python -m benchmarks.gpu                      # both, default sizes (GPT-2 medium-like)
    python -m benchmarks.gpu --models gpt --steps 30 --no-compile

Without a CUDA device it says so and exits 0 (CI and CPU machines)."""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import compose_config, emit, machine, print_table

# name -> (overrides, sequence length, batch size)
MODELS = {
    "gpt": (
        ["model=gpt", "model.d_model=1024", "model.num_heads=16", "model.num_layers=24",
         "model.ff_dim=4096", "model.dropout=0.0", "data.vocab_size=50304", "data.block_size=1024"],
        1024, 8,
    ),
    "bert": (
        ["model=bert", "model.hidden_size=768", "model.num_layers=12", "model.num_heads=12",
         "model.intermediate_size=3072", "model.dropout=0.0", "data.vocab_size=30522",
         "data.max_length=512"],
        512, 32,
    ),
}  # fmt: skip


class RandomTokens(Dataset):
    def __init__(self, n: int, length: int, vocab: int, lm: bool, classes: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocab, (n, length + 1), generator=generator)
        self.labels = torch.randint(0, max(classes, 1), (n,), generator=generator)
        self.lm = lm

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        if self.lm:
            return {"input_ids": self.ids[i, :-1]}, self.ids[i, 1:]
        ids = self.ids[i, :-1]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, self.labels[i]


def run(name: str, steps: int, warmup: int, compile_model: bool) -> dict:
    import lightning as L
    from lightning.fabric.utilities.throughput import get_available_flops

    from lightyard.callbacks.throughput import training_flops_per_batch
    from lightyard.runs.build import build_task, build_trainer

    overrides, length, batch = MODELS[name]
    cfg = compose_config(
        [
            *overrides,
            f"compile={str(compile_model).lower()}",
            "trainer.precision=bf16-mixed",
            "trainer.accelerator=gpu",
            f"trainer.max_steps={steps}",
            "trainer.max_epochs=-1",
            "trainer.limit_val_batches=0",
            "trainer.enable_checkpointing=false",
            "callbacks=none",
            "logger=none",
            "scheduler=none",
        ]
    )
    lm = name == "gpt"
    vocab = int(cfg.data.vocab_size)
    classes = 0 if lm else int(cfg.data.num_classes)
    data = RandomTokens(batch * steps, length, vocab, lm, classes)
    loader = DataLoader(data, batch_size=batch, num_workers=2, pin_memory=True, drop_last=True)
    task = build_task(cfg)
    flops = training_flops_per_batch(task.backbone, next(iter(loader)))

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_batch_end(self, *args, **kwargs) -> None:
            torch.cuda.synchronize()  # timing only; the benchmark's own, not the framework's
            self.times.append(time.perf_counter())

    clock = Clock()
    torch.cuda.reset_peak_memory_stats()
    trainer = build_trainer(cfg, [clock], task)
    trainer.fit(task, train_dataloaders=loader)
    timed = clock.times[warmup:]
    step_s = (timed[-1] - timed[0]) / (len(timed) - 1)
    peak = get_available_flops(torch.device("cuda"), torch.bfloat16)
    return {
        "batch": batch,
        "sequence": length,
        "params_m": sum(p.numel() for p in task.parameters()) / 1e6,
        "tokens_per_s": batch * length / step_s,
        "tflops_per_s": flops / step_s / 1e12,
        "mfu": (flops / step_s / peak) if peak else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "compiled": compile_model,
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="gpt,bert")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks.gpu: no CUDA device here; nothing to measure")
        return {}
    results = {
        name: run(name, args.steps, args.warmup, args.compile) for name in args.models.split(",")
    }
    rows = [
        [name, r["tokens_per_s"], r["tflops_per_s"], r["mfu"] or 0.0, r["peak_memory_gib"]]
        for name, r in results.items()
    ]
    print_table(
        "GPU throughput (bf16-mixed, fused AdamW)",
        ["model", "tokens/s", "TFLOP/s", "MFU", "peak GiB"],
        rows,
    )
    result = {
        "machine": machine(),
        "results": results,
        "summary": {
            name: {"tokens_per_s": round(r["tokens_per_s"]), "mfu": r["mfu"]}
            for name, r in results.items()
        },
    }
    emit("gpu", result)
    return result


if __name__ == "__main__":
    main()
