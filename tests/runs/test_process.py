"""keep_freed_memory: steps whose CPU buffers change size (ragged batches) stop page-faulting
their memory in again every step. Counted in fresh processes: the setting is process-wide."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys

import pytest

STEPS = """
import resource, sys, torch
from lightyard.runs.process import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(64 << 20).sum()  # a first, largest step
start = faults()
for i in range(80):  # then steps whose buffers differ in size: 8 blocks of 1-2 MiB each
    held = [torch.ones((256 << 10) + (i * 37 + j * 11) % 256 * 1024) for j in range(8)]
    del held
print(faults() - start)
"""


def _faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not ctypes.util.find_library("c"),
    reason="glibc's mallopt",
)
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    default, kept = _faults("default"), _faults("keep")
    assert kept * 2 < default, (kept, default)


def test_train_config_switches_it(cfg_factory, monkeypatch):
    from lightyard.runs import process as allocator
    from lightyard.runs.process import prepare_process

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    prepare_process(cfg_factory())
    prepare_process(cfg_factory("keep_freed_memory=false"))
    assert calls == [1]
