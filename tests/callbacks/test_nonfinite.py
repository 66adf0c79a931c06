"""The non-finite guard: a NaN loss skips its optimizer step (weights unchanged), or stops the
run after a checkpoint with a message naming the step."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightyard.callbacks.nonfinite import NonFiniteGuard, NonFiniteLoss

NAN_AT = 2


class NanAtStep(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 1)
        self.weights_before_nan = None

    def training_step(self, batch, batch_idx):
        loss = self.net(batch[0]).pow(2).mean()
        if self.global_step == NAN_AT:
            self.weights_before_nan = self.net.weight.detach().clone()
            loss = loss * float("nan")
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.1)


def _fit(guard, tmp_path, steps=4):
    model = NanAtStep()
    loader = DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=2)
    trainer = L.Trainer(
        max_steps=steps, callbacks=[guard], logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, loader)
    return model


def test_skip_leaves_the_weights_as_they_were(tmp_path):
    guard = NonFiniteGuard(action="skip")
    model = NanAtStep()
    loader = DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=2)
    seen = {}

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == NAN_AT:
                seen["after"] = pl_module.net.weight.detach().clone()

    trainer = L.Trainer(
        max_steps=4, callbacks=[guard, Probe()], logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, loader)
    assert guard.skipped_total == 1
    assert torch.equal(seen["after"], model.weights_before_nan)
    assert torch.isfinite(model.net.weight).all()


def test_stop_saves_and_names_the_step(tmp_path):
    guard = NonFiniteGuard(action="stop", dirpath=str(tmp_path))
    with pytest.raises(NonFiniteLoss, match=f"non-finite loss at step {NAN_AT}"):
        _fit(guard, tmp_path)
    state = torch.load(tmp_path / "nonfinite.ckpt", weights_only=True)
    assert torch.isfinite(state["state_dict"]["net.weight"]).all()


class FusedNanAtStep(NanAtStep):
    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.1, fused=True)


def test_fused_optimizer_skips_on_the_device(tmp_path):
    """The flag goes to the fused kernel: the step is skipped without the host reading it."""
    guard = NonFiniteGuard(action="skip")
    model = FusedNanAtStep()
    seen = {}

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == NAN_AT:
                seen["after"] = pl_module.net.weight.detach().clone()
                optimizer = trainer.optimizers[0]
                seen["steps"] = int(optimizer.state[pl_module.net.weight]["step"])

    trainer = L.Trainer(
        max_steps=4, callbacks=[guard, Probe()], logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=2))
    assert torch.equal(seen["after"], model.weights_before_nan)
    assert seen["steps"] == NAN_AT  # the skipped step did not count for Adam's bias correction
    assert guard.skipped_total == 1  # read when training ended
    assert torch.isfinite(model.net.weight).all()


class AlwaysNan(FusedNanAtStep):
    def training_step(self, batch, batch_idx):
        return self.net(batch[0]).pow(2).mean() * float("nan")


def test_fused_optimizer_stops_after_max_skips_on_a_logging_step(tmp_path):
    guard = NonFiniteGuard(action="skip", max_skips=2, dirpath=str(tmp_path))
    trainer = L.Trainer(
        max_steps=8, callbacks=[guard], logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path,
        log_every_n_steps=4,
    )  # fmt: skip
    model = AlwaysNan()
    before = model.net.weight.detach().clone()
    with pytest.raises(NonFiniteLoss, match="in the last 4 optimizer steps"):
        trainer.fit(model, DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=2))
    assert torch.equal(model.net.weight.detach(), before)
    state = torch.load(tmp_path / "nonfinite.ckpt", weights_only=True)
    assert torch.equal(state["state_dict"]["net.weight"], before)


class GradAtStep(NanAtStep):
    """A finite loss; at step NAN_AT one gradient entry is set to `value` after the backward."""

    def __init__(self, value: float, fused: bool):
        super().__init__()
        self.value, self.fused = value, fused
        self.weights_after_step: torch.Tensor | None = None

    def training_step(self, batch, batch_idx):
        return self.net(batch[0]).pow(2).mean()

    def on_after_backward(self):
        if self.global_step == NAN_AT:
            self.weights_before_nan = self.net.weight.detach().clone()
            self.net.weight.grad[0, 0] = self.value

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if batch_idx == NAN_AT:
            self.weights_after_step = self.net.weight.detach().clone()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-20, fused=self.fused)


def _fit_model(model, guard, tmp_path):
    trainer = L.Trainer(
        max_steps=4, callbacks=[guard], logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=2))


@pytest.mark.parametrize("fused", [False, True], ids=["host check", "device skip"])
def test_a_nan_gradient_under_a_finite_loss_skips_the_step(tmp_path, fused, caplog):
    guard = NonFiniteGuard(action="skip")
    model = GradAtStep(float("nan"), fused)
    _fit_model(model, guard, tmp_path)
    assert guard.skipped_total == 1
    assert torch.equal(model.weights_after_step, model.weights_before_nan)
    if not fused:  # the host check names the parameter
        assert "Non-finite gradient of net.weight at step 2" in caplog.text


@pytest.mark.parametrize("fused", [False, True], ids=["host check", "device skip"])
def test_a_huge_finite_gradient_is_applied_not_skipped(tmp_path, fused):
    # 1e30 squared overflows float32: a check by gradient norm would call this step non-finite
    guard = NonFiniteGuard(action="skip")
    model = GradAtStep(1e30, fused)
    _fit_model(model, guard, tmp_path)
    assert guard.skipped_total == 0
    moved = model.weights_before_nan - model.weights_after_step
    assert moved[0, 0] == pytest.approx(1e10, rel=1e-3)  # lr 1e-20 x gradient 1e30
    assert torch.isfinite(model.net.weight).all()


class OverflowAtStep(NanAtStep):
    """A finite loss whose gradients overflow at one step, as fp16 scaled gradients do."""

    def training_step(self, batch, batch_idx):
        return self.net(batch[0]).pow(2).mean()

    def on_after_backward(self):
        if self.global_step == NAN_AT:
            self.net.weight.grad.fill_(float("inf"))


def _fit_scaled(guard, tmp_path, model):
    from lightning.pytorch.plugins import MixedPrecision

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    trainer = L.Trainer(
        max_steps=4, callbacks=[guard], logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path,
        log_every_n_steps=1, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
    )  # fmt: skip
    trainer.fit(model, DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=2))
    return scaler


@pytest.mark.parametrize("action", ["skip", "stop"])
def test_beside_a_grad_scaler_an_overflow_is_the_scalers_to_skip(tmp_path, action):
    """16-mixed: overflowing gradients are routine; the guard neither counts them nor sets the
    optimizer's skip flag (the GradScaler does both itself), also with action=stop."""
    guard = NonFiniteGuard(action=action, dirpath=str(tmp_path))
    scaler = _fit_scaled(guard, tmp_path, OverflowAtStep())
    assert guard.skipped_total == 0 and not (tmp_path / "nonfinite.ckpt").exists()
    assert scaler.get_scale() < 2.0**8  # the scaler saw the overflow and lowered its scale


def test_beside_a_grad_scaler_a_non_finite_loss_still_stops(tmp_path):
    guard = NonFiniteGuard(action="stop", dirpath=str(tmp_path))
    with pytest.raises(NonFiniteLoss, match="non-finite loss at step 2"):
        _fit_scaled(guard, tmp_path, NanAtStep())
