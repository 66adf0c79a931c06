"""Language modeling: next-token cross-entropy, perplexity, next-token accuracy and bits per byte,
and a few sampled tokens at the end of fitting to show what the model learned."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lightyard.tasks.base import STAGES, Task
from lightyard.tasks.metrics import TokenAccuracy

log = logging.getLogger(__name__)
IGNORE = -100


class LanguageModelingTask(Task):
    """Targets are the inputs shifted by one (IGNORE where nothing is to be predicted). Logs
    `<stage>/loss`, `<stage>/ppl` and `<stage>/acc` (next-token accuracy), and `val/acc_best`,
    so the checkpoint and early-stopping defaults work unchanged. With a DataModule that knows
    its splits' tokens per byte (`tokens_per_byte`), also `<stage>/bpb`, bits per UTF-8 byte:
    the epoch's mean loss / ln 2 x tokens / bytes, which compares across tokenizers. Computed
    at the epoch's end from the mean loss, so it costs the step nothing; the ratio is the whole
    split's, while the blocks leave out the stream's last partial block."""

    # what this task logs: monitors and optimized_metric are checked against it before a run
    logged_metrics = (
        "train/loss", "train/loss_epoch", "train/ppl", "train/acc", "val/loss", "val/ppl",
        "val/acc", "val/acc_best", "test/loss", "test/ppl", "test/acc",
        "train/bpb", "val/bpb", "test/bpb",
    )  # fmt: skip
    input_kinds = ("lm",)
    progress_bar_metrics = ("val/ppl", "val/acc_best")

    def __init__(
        self,
        backbone: nn.Module,
        optimizer,
        scheduler=None,
        sample_tokens: int = 40,
        sample_prompt: str = "The",
        temperature: float = 0.8,
        top_k: int = 20,
    ) -> None:
        super().__init__(backbone, optimizer, scheduler)
        self.sample_tokens = sample_tokens
        self.sample_prompt = sample_prompt
        self.temperature = temperature
        self.top_k = top_k
        # token-weighted next-token accuracy per stage (the losses are the base task's)
        self.accuracies = nn.ModuleDict({f"{s}_": TokenAccuracy(IGNORE) for s in STAGES})
        self.__dict__["accuracy_by_stage"] = {s: self.accuracies[f"{s}_"] for s in STAGES}
        self.sample: str | None = None

    def _step(self, batch, stage: str):
        inputs, target = batch
        logits = self(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE)
        self.accuracy_by_stage[stage].defer(logits.detach().argmax(dim=-1), target)
        self.log_loss(stage, loss, weight=(target != IGNORE).sum())
        return loss

    def stage_metrics(self, stage: str):
        return [*super().stage_metrics(stage), self.accuracy_by_stage[stage]]

    def train_sums(self) -> dict[str, nn.Module]:
        return {**super().train_sums(), "accuracy": self.accuracies["train_"]}

    def epoch_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        values = super().epoch_metrics(stage)
        mean_loss = values["train/loss_epoch" if stage == "train" else f"{stage}/loss"]
        accuracy = self.accuracies[f"{stage}_"]
        values.update({f"{stage}/ppl": torch.exp(mean_loss), f"{stage}/acc": accuracy.compute()})
        accuracy.reset()
        ratio = self._tokens_per_byte().get(stage)
        if ratio:
            values[f"{stage}/bpb"] = mean_loss / math.log(2) * ratio
        return values

    def _tokens_per_byte(self) -> dict[str, float]:
        """Each split's tokens per byte, from the trainer's DataModule ({} without one)."""
        try:
            datamodule = getattr(self.trainer, "datamodule", None)
        except RuntimeError:  # not attached to a trainer
            return {}
        ratios = getattr(datamodule, "tokens_per_byte", None)
        return ratios() if callable(ratios) else {}

    @torch.no_grad()
    def generate(self, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
        """Top-k sampling, one token at a time, within the backbone's context length."""
        context = getattr(self.backbone, "max_length", None)
        for _ in range(new_tokens):
            window = ids if context is None else ids[:, -context:]
            logits = self.backbone(input_ids=window)[:, -1] / max(self.temperature, 1e-6)
            if self.top_k:
                kth = torch.topk(logits, min(self.top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            ids = torch.cat([ids, torch.multinomial(logits.softmax(dim=-1), 1)], dim=1)
        return ids

    def predict_step(self, batch, batch_idx):
        """The continuation of each prompt: `predict_tokens` new tokens (sample_tokens unless
        predict sets it), sampled as at the end of fitting."""
        ids = self.predict_inputs(batch)["input_ids"]
        new_tokens = int(getattr(self, "predict_tokens", None) or self.sample_tokens)
        out = {"tokens": self.generate(ids, new_tokens)[:, ids.shape[1] :]}
        if isinstance(batch, dict) and "index" in batch:
            out["index"] = batch["index"]
        return out

    def on_fit_end(self):
        datamodule = getattr(self.trainer, "datamodule", None)
        if not self.sample_tokens or not self.trainer.is_global_zero or datamodule is None:
            return
        if not hasattr(datamodule, "decode"):
            return
        was_training = self.training
        self.eval()
        prompt = datamodule.encode(self.sample_prompt) or [0]
        ids = torch.tensor([prompt], dtype=torch.long, device=self.device)
        self.sample = datamodule.decode(self.generate(ids, self.sample_tokens)[0].tolist())
        self.train(was_training)
        log.info("Sample after training: %s", self.sample)
        root = Path(self.trainer.default_root_dir)
        if root.is_dir():
            (root / "samples.txt").write_text(self.sample + "\n")
