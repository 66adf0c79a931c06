"""Data parallelism changes how a step is computed, never its result: DDP, FSDP2 and gradient
accumulation end where one process with the whole batch ends, and checkpoints move between them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.distributed.scale_worker import fit

WORKER = Path(__file__).with_name("scale_worker.py")
B, STEPS = 16, 4


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def assert_same_weights(a: Path, b: Path, atol: float = 1e-5) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys(), set(wa) ^ set(wb)
    for key in wa:
        assert torch.allclose(wa[key].float(), wb[key].float(), atol=atol), key


def run_worker(strategy: str, *phases: str, cwd: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(WORKER), "--strategy", strategy, "--batch", str(B), *phases],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-4000:]


def test_accumulation_equals_the_larger_batch(tmp_path):
    accumulated = fit("auto", 1, B, STEPS, tmp_path / "acc", accumulate=2)
    whole = fit("auto", 1, 2 * B, STEPS, tmp_path / "whole")
    assert len(accumulated) == len(whole) == STEPS  # k batches make one optimizer step
    assert_same_weights(tmp_path / "acc.ckpt", tmp_path / "whole.ckpt")


@pytest.mark.slow
def test_ddp_and_fsdp2_match_one_process_and_checkpoints_cross_over(tmp_path):
    """2 ranks x B == 1 process x 2B after N steps, for DDP and FSDP2 (gloo, CPU); checkpoints
    written by either resume in one process, and one process's checkpoint resumes under both."""
    single = fit("auto", 1, 2 * B, STEPS, tmp_path / "single")
    # resuming mid-epoch replays the epoch's first batches (plain loader): compare resumed runs
    # with a resumed single-process run, never with an uninterrupted one
    fit("auto", 1, 2 * B, 2 * STEPS, tmp_path / "single_resumed", resume=tmp_path / "single.ckpt")

    run_worker("ddp", f"ddp:{STEPS}", f"ddp_resumed:{2 * STEPS}:single.ckpt", cwd=tmp_path)
    run_worker("fsdp2", f"fsdp2:{STEPS}", f"fsdp2_resumed:{2 * STEPS}:single.ckpt", cwd=tmp_path)

    ddp = json.loads((tmp_path / "ddp.losses.json").read_text())
    fsdp2 = json.loads((tmp_path / "fsdp2.losses.json").read_text())
    assert ddp == pytest.approx(single, abs=1e-5)
    assert fsdp2 == pytest.approx(ddp, abs=1e-5)  # FSDP2's loss curve is DDP's
    assert_same_weights(tmp_path / "ddp.ckpt", tmp_path / "single.ckpt")
    assert_same_weights(tmp_path / "fsdp2.ckpt", tmp_path / "ddp.ckpt")

    # one process -> DDP / FSDP2
    assert_same_weights(tmp_path / "ddp_resumed.ckpt", tmp_path / "single_resumed.ckpt")
    assert_same_weights(tmp_path / "fsdp2_resumed.ckpt", tmp_path / "single_resumed.ckpt")
    # DDP / FSDP2 -> one process
    for source in ("ddp", "fsdp2"):
        out = tmp_path / f"from_{source}"
        fit("auto", 1, 2 * B, 2 * STEPS, out, resume=tmp_path / f"{source}.ckpt")
        assert_same_weights(Path(f"{out}.ckpt"), tmp_path / "single_resumed.ckpt")


@pytest.mark.slow
def test_compiled_checkpoints_load_uncompiled_and_back(tmp_path):
    """`compile=true` compiles the backbone in place: no `_orig_mod.` in checkpoint keys
    (Lightning #17415), so compiled and plain runs load each other's checkpoints."""
    import lightning as L

    from tests.distributed.scale_worker import OrderedDigits, make_task

    def trainer(steps: int) -> L.Trainer:
        return L.Trainer(
            accelerator="cpu",
            max_steps=steps,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )

    data = OrderedDigits(batch_size=B, num_workers=0, pin_memory=False)
    compiled = make_task("mlp")
    compiled.compile_backbone = True
    fit_compiled = trainer(2)
    fit_compiled.fit(compiled, datamodule=data)
    assert compiled.backbone._compiled_call_impl is not None  # it did compile
    fit_compiled.save_checkpoint(tmp_path / "compiled.ckpt")
    state = weights(tmp_path / "compiled.ckpt")
    assert not [key for key in state if "_orig_mod" in key]

    plain = make_task("mlp")
    plain.load_state_dict(state)  # strict: every key matches
    plain_trainer = trainer(4)
    plain_trainer.fit(plain, datamodule=data, ckpt_path=tmp_path / "compiled.ckpt")
    plain_trainer.save_checkpoint(tmp_path / "plain.ckpt")

    again = make_task("mlp")
    again.backbone.compile()  # what compile_backbone does in configure_model
    again.load_state_dict(weights(tmp_path / "plain.ckpt"))
