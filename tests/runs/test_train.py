"""train(cfg) end to end in-process: every backbone with every image DataModule, debug presets."""

from __future__ import annotations

import json

import pytest
import torch

from lightyard.runs.train import train

BACKBONES = ["cnn", "resnet"]
DATASETS = ["digits", "mnist", "fashion_mnist", "cifar10", "image_folder"]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("model", BACKBONES)
def test_fast_dev_run(model, dataset, cfg_factory, local_datasets, tmp_path):
    cfg = cfg_factory(f"model={model}", *local_datasets[dataset], "debug=fast")
    train(cfg)
    results = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= results["test/acc"] <= 1.0


@pytest.mark.parametrize("preset", ["overfit", "profile", "anomaly"])
def test_debug_presets(preset, cfg_factory, tmp_path):
    cfg = cfg_factory(f"debug={preset}", "trainer.max_epochs=2", "callbacks=none", "logger=none")
    train(cfg)
    assert (tmp_path / "run" / "metrics.json").is_file()
    if preset == "profile":
        assert any("profile" in p.name for p in (tmp_path / "run").iterdir())


def test_train_and_test_switches(cfg_factory, tmp_path):
    cfg = cfg_factory("train=false", "callbacks=none", "logger=none", "optimized_metric=test/acc")
    value = train(cfg)
    assert 0.0 <= value <= 1.0  # untrained weights, tested
    results = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "train/loss" not in results


def test_unknown_optimized_metric_is_a_config_error(cfg_factory):
    from lightyard.errors import ConfigError

    cfg = cfg_factory("debug=fast", "optimized_metric=val/nope")
    with pytest.raises(ConfigError, match="val/nope was never logged"):
        train(cfg)


@pytest.mark.parametrize("scheduler", ["cosine", "step", "plateau", "none"])
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_optimizers_and_schedulers_step(optimizer, scheduler, cfg_factory):
    cfg = cfg_factory(
        f"optimizer={optimizer}",
        f"scheduler={scheduler}",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=3",
        "+trainer.limit_val_batches=2",
        "test=false",
        "callbacks=none",
        "logger=none",
    )
    assert train(cfg) is not None


def test_predict_step_returns_classes_and_probabilities(cfg_factory):
    from hydra.utils import instantiate

    from lightyard.runs.build import build_task, build_trainer

    cfg = cfg_factory("callbacks=none", "logger=none")
    datamodule = instantiate(cfg.data)
    trainer = build_trainer(cfg, [])
    [first, *_] = trainer.predict(build_task(cfg), datamodule=datamodule)
    assert first["prob"].shape == (cfg.data.batch_size, 10)
    assert first["prob"].sum(dim=-1).allclose(first["prob"].new_ones(cfg.data.batch_size))
    assert (first["pred"] == first["prob"].argmax(dim=-1)).all()


def test_optimizer_is_fused_where_torch_has_the_kernel(cfg_factory):
    import functools

    import torch

    from lightyard.runs.build import build_task
    from lightyard.tasks.optim import with_fused_kernels

    for group in ("adamw", "sgd"):
        task = build_task(cfg_factory(f"optimizer={group}"))
        fused = task._optimizer_factory()
        assert isinstance(fused, functools.partial) and fused.keywords["fused"] is True
        optimizer = fused(task.parameters())
        assert optimizer.defaults["fused"] and optimizer._step_supports_amp_scaling
        task._device = torch.device("cuda", 0)  # what Lightning sets when it moves the module
        assert task._optimizer_factory().keywords["fused"] is True
    # a setting in the config wins; optimizers fused only on some devices are left alone
    for setting in ("optimizer.fused=false", "+optimizer.foreach=true"):
        task = build_task(cfg_factory(setting))
        assert task._optimizer_factory() is task.optimizer_factory
    adagrad = functools.partial(torch.optim.Adagrad, lr=0.1)
    assert with_fused_kernels(adagrad, "cuda") is adagrad
    assert with_fused_kernels(functools.partial(torch.optim.AdamW), "mps").keywords == {}


def test_a_resumed_optimizer_keeps_this_runs_kernel_not_the_checkpoints():
    import copy

    import torch

    from lightyard.tasks.optim import keep_kernel_choice

    params = [torch.nn.Parameter(torch.ones(3))]
    saved = torch.optim.AdamW(params, fused=True)
    params[0].grad = torch.ones(3)
    saved.step()
    for fused in (False, True):
        resumed = torch.optim.AdamW(params, fused=fused)
        resumed.load_state_dict(copy.deepcopy(saved.state_dict()))
        assert resumed.param_groups[0]["fused"] is True  # what torch restores
        keep_kernel_choice(resumed)
        assert resumed.param_groups[0]["fused"] is fused
        resumed.step()
        assert int(resumed.state[params[0]]["step"]) == 2


def test_a_longer_resumed_cosine_schedule_carries_on_from_the_rate_it_had():
    """Resumed with more epochs, the learning rate does not jump to where the longer schedule
    would be: it goes on from its value and decays to the minimum at the new end."""
    from lightyard.tasks.optim import cosine_with_warmup

    def schedule(total: int):
        weight = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([weight], lr=1.0)
        scheduler = cosine_with_warmup(optimizer, total, warmup_fraction=0.1, min_lr_ratio=0.1)
        return optimizer, scheduler

    optimizer, first = schedule(100)
    for _ in range(60):
        optimizer.step()
        first.step()
    rate = optimizer.param_groups[0]["lr"]
    saved = first.state_dict()

    optimizer, resumed = schedule(200)  # the resumed run plans 200 steps
    resumed.load_state_dict(saved)
    assert resumed.get_last_lr()[0] == pytest.approx(rate)
    rates = []
    for _ in range(140):
        optimizer.step()
        resumed.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert abs(rates[0] - rate) < 0.01 * rate  # no jump
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))  # only decays
    assert rates[-1] == pytest.approx(0.1)  # the minimum at the new end

    optimizer, same = schedule(100)  # same length: the saved schedule, unchanged
    same.load_state_dict(saved)
    assert same.replanned_at is None and same.get_last_lr()[0] == pytest.approx(rate)


def test_a_run_resumed_mid_epoch_reports_epoch_values_over_the_whole_epoch(tmp_path):
    """train/loss_epoch and train/acc of the epoch a run was stopped in cover every batch of
    it, not only those after the resume: the running sums travel in the checkpoint."""
    from lightyard.config.compose import compose_config
    from lightyard.errors import Preempted

    common = [
        "trainer=cpu",
        "trainer.deterministic=true",
        "trainer.max_epochs=2",
        "test=false",
        "callbacks.rich_progress_bar=null",
        "callbacks.model_summary=null",
    ]

    def run(name: str, *overrides: str) -> dict:
        cfg = compose_config([*common, *overrides], root=tmp_path, output_dir=tmp_path / name)
        train(cfg)
        return json.loads((tmp_path / name / "metrics.json").read_text())

    want = run("uninterrupted")
    with pytest.raises(Preempted):
        run(
            "stopped",
            "+callbacks.stop._target_=tests.runs.signal_at_step.SignalAtStep",
            "+callbacks.stop.step=25",  # in the second epoch (20 batches each)
        )
    saved = tmp_path / "stopped" / "checkpoints" / "preempted.ckpt"
    assert torch.load(saved, weights_only=True)["global_step"] == 26
    got = run("resumed", f"ckpt_path={saved}")
    for key in ("train/loss_epoch", "train/acc", "train/f1", "val/acc", "val/loss"):
        assert got[key] == pytest.approx(want[key], abs=1e-6), key
