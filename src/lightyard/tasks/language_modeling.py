"""Language modeling: next-token cross-entropy, perplexity and next-token accuracy, and a few
sampled tokens at the end of fitting to show what the model learned."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric

from lightyard.tasks.base import Task
from lightyard.tasks.metrics import WeightedMean

log = logging.getLogger(__name__)
IGNORE = -100


class LanguageModelingTask(Task):
    """Targets are the inputs shifted by one (IGNORE where nothing is to be predicted). Logs
    `<stage>/loss`, `<stage>/ppl` and `<stage>/acc` (next-token accuracy), and `val/acc_best`,
    so the checkpoint and early-stopping defaults work unchanged."""

    input_kinds = ("lm",)

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
        # token-weighted means per stage (ModuleDict keys may not be "train": nn.Module.train)
        self.losses = nn.ModuleDict({f"{s}_": WeightedMean() for s in ("train", "val", "test")})
        self.accuracies = nn.ModuleDict({f"{s}_": WeightedMean() for s in ("train", "val", "test")})
        self.val_acc_best = MaxMetric()
        self.sample: str | None = None

    def _step(self, batch, stage: str):
        inputs, target = batch
        logits = self(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE)
        counted = target != IGNORE
        tokens = counted.sum()
        correct = ((logits.argmax(dim=-1) == target) & counted).sum()
        self.losses[f"{stage}_"].update(loss.detach(), weight=tokens)
        self.accuracies[f"{stage}_"].update(correct / tokens.clamp(min=1), weight=tokens)
        self.log_loss(stage, loss)
        return loss

    def _epoch_end(self, stage: str) -> None:
        mean_loss = self.losses[f"{stage}_"].compute()
        self.log(f"{stage}/ppl", torch.exp(mean_loss), prog_bar=stage == "val")
        self.log(f"{stage}/acc", self.accuracies[f"{stage}_"].compute())
        self.losses[f"{stage}_"].reset()
        self.accuracies[f"{stage}_"].reset()

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_train_epoch_end(self):
        self._epoch_end("train")

    def on_train_start(self):
        self.val_acc_best.reset()

    def on_validation_epoch_end(self):
        accuracy = self.accuracies["val_"].compute()
        self._epoch_end("val")
        if not self.trainer.sanity_checking:
            self.val_acc_best(accuracy)
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def on_test_epoch_end(self):
        self._epoch_end("test")

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
