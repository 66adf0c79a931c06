"""How a run was made, written into its directory: command line and overrides, git commit and
uncommitted diff, installed packages, hardware, seeds. Secrets from the environment are masked
everywhere they could leak (these files, the logged config, checkpoints)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from lightyard.config.secrets import redact, secret_values

PROVENANCE_DIR = "provenance"


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state(start: Path) -> dict[str, Any]:
    """The repository `start` is in: commit, branch, whether it is dirty, and the diff."""
    root = _git(start, "rev-parse", "--show-toplevel")
    if root is None:
        return {"repository": None}
    root_path = Path(root.strip())
    diff = _git(root_path, "diff", "HEAD") or ""
    untracked = (_git(root_path, "ls-files", "--others", "--exclude-standard") or "").split()
    return {
        "repository": str(root_path),
        "commit": (_git(root_path, "rev-parse", "HEAD") or "").strip() or None,
        "branch": (_git(root_path, "rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None,
        "dirty": bool(diff.strip() or untracked),
        "untracked": untracked,
        "diff": diff,
    }


def packages() -> dict[str, str]:
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            found[name] = dist.version
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": str(torch.__version__),
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "gpus": [],
    }
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            info["gpus"].append(
                {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1)}
            )
    return info


def collect(cfg, overrides: list[str], start: Path) -> dict[str, Any]:
    """Everything but the package list and the diff, which go to their own files."""
    from omegaconf import OmegaConf

    seeds = {"seed": cfg.get("seed")}
    split_seed = OmegaConf.select(cfg, "data.split_seed", default=None)
    if split_seed is not None:
        seeds["data.split_seed"] = split_seed
    git = git_state(start)
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "overrides": list(overrides),
        "cwd": os.getcwd(),
        "git": {k: v for k, v in git.items() if k != "diff"},
        "hardware": hardware(),
        "seeds": seeds,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "_diff": git.get("diff") or "",
    }


def write(
    run_dir: Path, cfg, overrides: list[str], choices: dict[str, str] | None = None
) -> dict[str, Any]:
    """Write provenance/ in the run dir; each launch (a resume too) gets its own numbered file.
    Returns the summary that goes into the logged config."""
    secrets = secret_values()
    info = collect(cfg, overrides, Path.cwd())
    diff = info.pop("_diff")
    folder = run_dir / PROVENANCE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    launch = len(list(folder.glob("launch-*.json")))
    info["launch"] = launch
    info["choices"] = dict(choices or {})  # config group options, e.g. {"model": "cnn"}
    _write(folder / f"launch-{launch:03d}.json", json.dumps(redact(info, secrets), indent=2))
    _write(folder / f"launch-{launch:03d}.diff", redact(diff, secrets))
    lines = [f"{name}=={version}" for name, version in packages().items()]
    _write(folder / "packages.txt", "\n".join(lines) + "\n")
    return redact(
        {
            "command": " ".join(info["command"][1:]),
            "git_commit": info["git"].get("commit"),
            "git_dirty": info["git"].get("dirty"),
            "launch": launch,
            "torch": info["hardware"]["torch"],
            "cuda": info["hardware"]["cuda_version"],
            "gpus": [g["name"] for g in info["hardware"]["gpus"]],
        },
        secrets,
    )


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def scrub_files(folder: Path) -> None:
    """Mask secret values in text files Hydra wrote (e.g. a key passed on the command line)."""
    secrets = secret_values()
    if not folder.is_dir() or not secrets:
        return
    for path in folder.iterdir():
        if path.is_file() and path.suffix in (".yaml", ".yml", ".log", ".txt", ".json"):
            text = path.read_text(errors="replace")
            masked = redact(text, secrets)
            if masked != text:
                _write(path, masked)


def record(cfg, trainer, output_dir: Path) -> None:
    """provenance/ in the run dir (rank 0), its summary in the logged config."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    if not trainer.is_global_zero:
        return
    overrides, choices = [], {}
    if HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
        choices = {k: str(v) for k, v in HydraConfig.get().runtime.choices.items()}
    summary = write(output_dir, cfg, overrides, choices)
    scrub_files(output_dir / ".hydra")
    with open_dict(cfg):
        cfg.provenance = summary
