"""Run the jobs of a sweep k at a time on this machine, each in a fresh process pinned to its own
CPU cores (and GPUs): processes share nothing, so a job that crashes, leaks or hangs its
interpreter takes no other job with it, and a slot is refilled as soon as its job ends."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from lightyard import _internals
from lightyard.config.hardware import visible_gpus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """What one running job may use."""

    index: int
    cpus: tuple[int, ...]
    gpus: tuple[int, ...]

    def describe(self) -> str:
        gpus = f", GPUs {list(self.gpus)}" if self.gpus else ""
        return f"slot {self.index}: CPU cores {list(self.cpus)}{gpus}"


def plan_slots(
    n_jobs: int, cpus_per_job: int | None, gpus_per_job: int, gpus: Sequence[int] | None
) -> list[Slot]:
    """Split the cores this process may use (and the GPUs) into n_jobs disjoint slots."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cores = cores or list(range(os.cpu_count() or 1))
    per_job = cpus_per_job or max(1, len(cores) // n_jobs)
    gpu_ids = list(gpus) if gpus is not None else list(range(visible_gpus()))
    if gpus_per_job * n_jobs > len(gpu_ids):
        from lightyard.errors import ConfigError

        raise ConfigError(
            f"hydra.launcher: {n_jobs} jobs x {gpus_per_job} GPUs need {n_jobs * gpus_per_job} "
            f"GPUs, {len(gpu_ids)} are visible; lower n_jobs or gpus_per_job"
        )
    slots = []
    for i in range(n_jobs):
        # more jobs than cores: slots share cores round-robin rather than fail
        cpus = tuple(cores[(i * per_job + j) % len(cores)] for j in range(per_job))
        slots.append(
            Slot(i, tuple(sorted(set(cpus))), tuple(gpu_ids[i * gpus_per_job :][:gpus_per_job]))
        )
    return slots


def pin(slot: Slot) -> None:
    """Confine this (fresh) process to its slot before torch is imported: affinity, thread
    pools sized to the cores, and CUDA_VISIBLE_DEVICES when the slot has GPUs."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, slot.cpus)
    threads = str(len(slot.cpus))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = threads
    if slot.gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in slot.gpus)
    os.environ["LIGHTYARD_SLOT"] = slot.describe()


@dataclass(frozen=True)
class PinnedTask:
    """The task function, logging where its job runs into the job's own log."""

    task_function: Any

    def __call__(self, cfg):
        import torch

        torch.set_num_threads(len(os.sched_getaffinity(0)))
        log.info("%s (torch threads %d)", os.environ.get("LIGHTYARD_SLOT"), torch.get_num_threads())
        return self.task_function(cfg)


def _child(conn, slot: Slot, pickled: bytes) -> None:
    pin(slot)
    import cloudpickle

    payload = cloudpickle.loads(pickled)
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job, setup_globals
    from omegaconf import open_dict

    Singleton.set_state(payload["singletons"])
    setup_globals()
    context = payload["hydra_context"]
    config = context.config_loader.load_sweep_config(payload["config"], list(payload["overrides"]))
    with open_dict(config):
        config.hydra.job.id = f"{payload['idx']}"
        config.hydra.job.num = payload["idx"]
    result = run_job(
        hydra_context=context,
        task_function=PinnedTask(payload["task_function"]),
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    if result.status == JobStatus.FAILED:  # exceptions may not pickle; their text does
        error = _internals.job_return_value(result)
        if not _picklable(error):
            result.return_value = RuntimeError(f"{type(error).__name__}: {error}")
    conn.send(result)
    conn.close()


def _picklable(value: Any) -> bool:
    import pickle

    try:
        pickle.loads(pickle.dumps(value))
        return True
    except Exception:
        return False


def _lost(process, overrides: Sequence[str]) -> JobReturn:
    result = JobReturn()
    result.overrides = list(overrides)
    result.status = JobStatus.FAILED
    result.return_value = RuntimeError(f"the job's process died (exit code {process.exitcode})")
    return result


def launch(
    *,
    hydra_context,
    task_function,
    config,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    slots: list[Slot],
) -> list[JobReturn]:
    import cloudpickle
    from hydra.core.singleton import Singleton
    from hydra.core.utils import filter_overrides

    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    spawn = multiprocessing.get_context("spawn")  # no inherited torch/CUDA state
    pending = list(enumerate(job_overrides))
    free = list(slots)
    running: dict[Any, tuple[Any, int, Slot]] = {}
    results: dict[int, JobReturn] = {}
    log.info("Launching %d jobs, %d at a time", len(job_overrides), len(slots))
    while pending or running:
        while pending and free:
            position, overrides = pending.pop(0)
            slot = free.pop(0)
            idx = initial_job_idx + position
            log.info("\t#%d (%s) : %s", idx, slot.describe(), " ".join(filter_overrides(overrides)))
            receive, send = spawn.Pipe(duplex=False)
            payload = {
                "singletons": Singleton.get_state(),
                "hydra_context": hydra_context,
                "task_function": task_function,
                "config": config,
                "overrides": list(overrides),
                "idx": idx,
            }
            # cloudpickle, as submitit does: Hydra's state holds OmegaConf's resolver closures
            pickled = cloudpickle.dumps(payload)
            process = spawn.Process(target=_child, args=(send, slot, pickled))
            process.start()
            send.close()
            running[receive] = (process, position, slot)
        for conn in wait(list(running)):
            process, position, slot = running.pop(conn)
            try:
                results[position] = conn.recv()
            except EOFError:  # died without a result: killed, out of memory, segfault
                process.join()
                results[position] = _lost(process, job_overrides[position])
            process.join()
            free.append(slot)
    return [results[i] for i in range(len(job_overrides))]
