"""Settings that are each fine alone but fail together, minutes into a run: a model that cannot
read the data, shapes that disagree, a precision or strategy this machine cannot run, a monitored
metric the task never logs."""

from __future__ import annotations

from omegaconf import DictConfig

from lightyard.config.fit import incompatibility
from lightyard.config.hardware import visible_gpus
from lightyard.config.lora import check_lora
from lightyard.config.nodes import component_nodes, resolved
from lightyard.config.problems import Problems, did_you_mean
from lightyard.config.signatures import class_constant, inherited_constant, signature_of

PRECISIONS = {
    "64",
    "64-true",
    "32",
    "32-true",
    "16",
    "16-mixed",
    "16-true",
    "bf16",
    "bf16-mixed",
    "bf16-true",
    "transformer-engine",
    "transformer-engine-float16",
}
GPU_ACCELERATORS = {"gpu", "cuda"}


def check_combinations(cfg: DictConfig, problems: Problems) -> None:
    if found := incompatibility(cfg):
        problems.add(*found)
    check_shapes(cfg, problems)
    check_fractions(cfg, problems)
    check_trainer_values(cfg, problems)
    check_hardware(cfg, problems)
    check_metrics(cfg, problems)
    check_lora(cfg, problems)
    check_steps_per_batch(cfg, problems)


def check_steps_per_batch(cfg: DictConfig, problems: Problems) -> None:
    """steps_per_batch > 1 takes its optimizer steps itself (manual optimization): what
    Lightning would do per step it cannot, and step counts must fall on a group's end."""
    size = resolved(cfg, "steps_per_batch")
    if not isinstance(size, int) or isinstance(size, bool):
        return  # the schema reports the type
    if size < 1:
        problems.add(
            "steps_per_batch", f"{size} optimizer steps per batch", "a positive integer",
            "steps_per_batch=1 (one step per batch, Lightning's loop)",
        )  # fmt: skip
        return
    if size == 1:
        return
    fix = "steps_per_batch=1"
    accumulate = resolved(cfg, "trainer.accumulate_grad_batches")
    if isinstance(accumulate, int) and accumulate != 1:
        problems.add(
            "trainer.accumulate_grad_batches",
            f"{accumulate} with steps_per_batch={size}: each batch of a group is its own step",
            "trainer.accumulate_grad_batches=1 with steps_per_batch > 1",
            f"{fix}, or raise data.batch_size instead of accumulating",
        )
    if resolved(cfg, "trainer.gradient_clip_val") not in (None, 0, 0.0):
        problems.add(
            "trainer.gradient_clip_val",
            f"gradient clipping with steps_per_batch={size}: Lightning clips only the steps it "
            "takes itself",
            "trainer.gradient_clip_val=null with steps_per_batch > 1",
            f"{fix}, or trainer.gradient_clip_val=null",
        )
    if resolved(cfg, "scheduler.monitor"):
        problems.add(
            "scheduler",
            f"a scheduler that watches a metric with steps_per_batch={size}",
            "a step- or epoch-interval scheduler without a monitor (cosine, step, none)",
            f"{fix}, or another scheduler, e.g. scheduler=cosine",
        )
    devices, nodes = resolved(cfg, "trainer.devices"), resolved(cfg, "trainer.num_nodes")
    several = (isinstance(devices, int) and (devices > 1 or devices == -1)) or (
        isinstance(nodes, int) and nodes > 1
    )
    target = resolved(cfg, "data._target_")
    if several and isinstance(target, str) and inherited_constant(target, "shards_itself") is None:
        problems.add(
            "steps_per_batch",
            f"steps_per_batch={size} on several processes with {target}, which does not shard "
            "itself: the grouped loader is not a DataLoader, so Lightning gives it no "
            "distributed sampler and every rank would read the same batches",
            "a DataModule with `shards_itself = True` (lightyard.data.base.SplitDataModule and "
            "every built-in one), or one process",
            f"{fix}, or base the DataModule on lightyard.data.base.SplitDataModule",
        )
    for name in cfg.get("callbacks") or {}:
        every = resolved(cfg, f"callbacks.{name}.every_n_train_steps")
        if isinstance(every, int) and not isinstance(every, bool) and every % size:
            problems.add(
                f"callbacks.{name}.every_n_train_steps",
                f"{every} is not a multiple of steps_per_batch={size}: a checkpoint is saved "
                "between groups, so it would be skipped",
                f"a multiple of {size}",
                f"callbacks.{name}.every_n_train_steps={max(size, every // size * size)}",
            )


def check_fractions(cfg: DictConfig, problems: Problems) -> None:
    """The held-out shares leave something to train on."""
    val, test = resolved(cfg, "data.val_fraction"), resolved(cfg, "data.test_fraction")
    numbers = [v for v in (val, test) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == 2 and sum(numbers) >= 1:
        problems.add(
            "data.val_fraction",
            f"data.val_fraction={val} and data.test_fraction={test} hold out {sum(numbers):g} "
            "of the data, leaving nothing to train on",
            "two fractions whose sum is below 1 (e.g. 0.15 and 0.15)",
            "lower one of them, e.g. data.val_fraction=0.1 data.test_fraction=0.1",
        )


def check_trainer_values(cfg: DictConfig, problems: Problems) -> None:
    """Values of the Trainer's arguments whose type allows more than Lightning accepts."""
    devices = resolved(cfg, "trainer.devices")
    counted = isinstance(devices, int) and not isinstance(devices, bool)
    if counted and (devices == 0 or devices < -1):
        problems.add(
            "trainer.devices",
            f"{devices} asks for no device",
            "a positive count, -1 (all), auto, or a list of device indices",
            "trainer.devices=1",
        )
    interval = resolved(cfg, "trainer.val_check_interval")
    if isinstance(interval, float) and not 0 < interval <= 1:
        problems.add(
            "trainer.val_check_interval",
            f"{interval} is a fraction of an epoch outside (0, 1]",
            "a fraction of the epoch in (0, 1] (0.25: four times an epoch), or a whole number "
            "of batches (an integer)",
            "a fraction, e.g. trainer.val_check_interval=0.5, or a number of batches, e.g. "
            "trainer.val_check_interval=100",
        )
    elif isinstance(interval, int) and not isinstance(interval, bool) and interval < 1:
        problems.add(
            "trainer.val_check_interval",
            f"{interval} batches is not a validation interval",
            "a positive number of batches, a fraction in (0, 1], or null (each epoch's end)",
            "trainer.val_check_interval=null",
        )


def check_shapes(cfg: DictConfig, problems: Problems) -> None:
    for model_key, data_key in (
        ("model.in_channels", "data.channels"),
        ("model.num_classes", "data.num_classes"),
        ("task.num_classes", "data.num_classes"),
    ):
        a, b = resolved(cfg, model_key), resolved(cfg, data_key)
        if isinstance(a, int) and isinstance(b, int) and a != b:
            problems.add(
                model_key,
                f"is {a} but the data gives {data_key}={b}",
                f"{b} (keep the default interpolation ${{{data_key}}})",
                f"drop the override of {model_key}, or pick data that matches",
            )


def check_hardware(cfg: DictConfig, problems: Problems) -> None:
    if not isinstance(cfg.get("trainer"), DictConfig):
        return
    accelerator = str(resolved(cfg, "trainer.accelerator") or "auto")
    devices = resolved(cfg, "trainer.devices")
    strategy = str(resolved(cfg, "trainer.strategy") or "auto")
    precision = str(resolved(cfg, "trainer.precision") or "32-true")
    gpus = visible_gpus()
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and gpus == 0)
    if precision not in PRECISIONS:
        problems.add(
            "trainer.precision",
            f"{precision!r} is not a precision Lightning knows",
            ", ".join(sorted(PRECISIONS)),
            "e.g. trainer.precision=bf16-mixed",
        )
    elif on_cpu and precision in ("16", "16-mixed", "16-true"):
        problems.add(
            "trainer.precision",
            f"{precision} needs a GPU; this run is on the CPU",
            "32-true or bf16-mixed on the CPU",
            "trainer.precision=bf16-mixed (or run on a GPU)",
        )
    if accelerator in GPU_ACCELERATORS and gpus == 0:
        problems.add(
            "trainer.accelerator",
            f"{accelerator} was asked for but this machine shows no GPU",
            "cpu, auto, or gpu on a machine with one",
            "trainer.accelerator=cpu (or trainer=cpu)",
        )
    elif accelerator in GPU_ACCELERATORS and isinstance(devices, int) and devices > gpus:
        problems.add(
            "trainer.devices",
            f"{devices} GPUs asked for, {gpus} visible",
            f"at most {gpus} (or -1 for all)",
            f"trainer.devices={gpus}",
        )
    # lightyard's fsdp node shards with FSDP2 on the CPU (engine auto|fsdp2); Lightning's own
    # "fsdp" strategy, and engine=fsdp1, need GPUs
    engine = str(resolved(cfg, "trainer.strategy.engine") or "fsdp1")
    if "fsdp" in strategy.lower() and on_cpu and engine == "fsdp1":
        problems.add(
            "trainer.strategy",
            f"{strategy} needs GPUs; Lightning's FSDP refuses the CPU",
            "ddp on the CPU; fsdp with accelerator=gpu",
            "trainer.strategy=ddp, or run on GPUs",
        )
    if "deepspeed" in strategy.lower() and on_cpu:
        problems.add(
            "trainer.strategy",
            f"{strategy} needs GPUs",
            "ddp on the CPU",
            "trainer.strategy=ddp",
        )


def check_metrics(cfg: DictConfig, problems: Problems) -> None:
    task = cfg.get("task") if isinstance(cfg.get("task"), DictConfig) else None
    if task is None or not isinstance(task.get("_target_"), str):
        return
    signature = signature_of(task._target_)
    logged = class_constant(signature, "logged_metrics") if signature else None
    if not logged:
        return
    logged = set(logged)
    metric = resolved(cfg, "optimized_metric")
    metrics = metric if isinstance(metric, list) else [metric]
    checks = [("optimized_metric", m) for m in metrics]
    for path, node in component_nodes(cfg):
        if path.startswith(("callbacks.", "scheduler")) and "monitor" in node:
            checks.append((f"{path}.monitor", resolved(cfg, f"{path}.monitor")))
    for key, metric in checks:
        if isinstance(metric, str) and metric and metric not in logged:
            suggestion = did_you_mean(metric, logged)
            problems.add(
                key,
                f"{metric} is never logged by {task._target_}",
                ", ".join(sorted(logged)),
                (suggestion + " " if suggestion else "") + f"set {key} to a logged metric",
            )
