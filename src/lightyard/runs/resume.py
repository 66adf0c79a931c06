"""`resume=<run_dir>` and `resume=auto` on the command line: continue a run in its own directory
with its own saved config. Torch-free: this runs before Hydra starts."""

from __future__ import annotations

from pathlib import Path

from lightyard.config.command_line import with_search_path
from lightyard.errors import ConfigError
from lightyard.runs.run_dirs import has_checkpoint, saved_config

# Overrides that may change on resume: how long to train, how to log and show progress. Anything
# else (model, data, optimizer, seed, ...) would make the checkpoint and the config disagree.
SAFE_ON_RESUME = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.min_epochs",
    "trainer.min_steps",
    "trainer.max_time",
    "trainer.limit_val_batches",
    "trainer.limit_test_batches",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "data.num_workers",
    "print_config",
    "test",
    "validate",
    "trusted_checkpoint",
    "keep_freed_memory",
    "tags",
    "logger",
    "callbacks.rich_progress_bar",
    "callbacks.model_summary",
    "hydra",
    "resume",
)


def _value(argv: list[str], key: str) -> str | None:
    found = [arg.split("=", 1)[1] for arg in argv if arg.split("=", 1)[0].lstrip("+") == key]
    return found[-1] if found else None


def _is_safe(override: str) -> bool:
    key = override.lstrip("+~").split("=", 1)[0]
    return any(key == safe or key.startswith(safe + ".") for safe in SAFE_ON_RESUME)


def _unchanged(override: str, run_dir: Path) -> bool:
    """True when the override sets what the run already has (its value or group option)."""
    import json

    import yaml
    from omegaconf import OmegaConf

    key, _, value = override.lstrip("+~").partition("=")
    if key.startswith("hydra.") or key == "resume":
        return False
    first_launch = run_dir / "provenance" / "launch-000.json"
    choices = (
        json.loads(first_launch.read_text()).get("choices", {}) if first_launch.is_file() else {}
    )
    if key in choices:
        return str(choices[key]) == value
    saved = OmegaConf.load(saved_config(run_dir))
    missing = object()
    current = OmegaConf.select(saved, key, default=missing, throw_on_missing=False)
    if current is missing:
        return False
    if OmegaConf.is_config(current):
        current = OmegaConf.to_container(current)
    try:
        wanted = yaml.safe_load(value) if value else None
    except yaml.YAMLError:
        return False
    return current == wanted


def resume_arguments(argv: list[str]) -> list[str] | None:
    """The command line that resumes the run `resume=` names (its config, its directory), or
    None to start a fresh run (no resume=, or resume=auto with nothing to resume)."""
    value = _value(argv, "resume")
    if value in (None, "null", ""):
        return None
    if value == "auto":
        fixed = _value(argv, "hydra.run.dir")
        if not fixed or "${" in fixed:
            raise ConfigError(
                "resume: `auto` needs a fixed run directory to look in. Allowed: resume=auto with "
                "hydra.run.dir=<a path without ${...}>, or resume=<run dir>. Fix: e.g. "
                "resume=auto hydra.run.dir=outputs/train/my_run"
            )
        run_dir = Path(fixed)
        if not (has_checkpoint(run_dir) and saved_config(run_dir).is_file()):
            return None
    else:
        run_dir = Path(value)
        if not saved_config(run_dir).is_file():
            raise ConfigError(
                f"resume: {value} holds no .hydra/config.yaml. Allowed: the directory of a "
                "training run (it contains .hydra/ and checkpoints/), or auto. Fix: give the run "
                "directory printed when the run started"
            )
        if not has_checkpoint(run_dir):
            raise ConfigError(
                f"resume: {value} holds no checkpoint to resume from. Allowed: a run that saved "
                "checkpoints/*.ckpt. Fix: start it again without resume=, or keep "
                "callbacks.model_checkpoint / callbacks.step_checkpoint on"
            )
    run_dir = run_dir.resolve()
    # the run's own overrides may be repeated (a requeued job re-runs the same command line)
    overrides = [a for a in argv if not a.startswith("-") and not _unchanged(a, run_dir)]
    unsafe = [a for a in overrides if not _is_safe(a)]
    if unsafe:
        raise ConfigError(
            f"resume: {', '.join(unsafe)} would change the resumed run (its model, data or "
            "optimisation would no longer match its checkpoint). Allowed on resume: "
            + ", ".join(SAFE_ON_RESUME)
            + ". Fix: drop those overrides, or start a new run from the checkpoint with "
            f"ckpt_path={run_dir}/checkpoints/last.ckpt"
        )
    changed = [
        a for a in overrides if not a.split("=")[0].lstrip("+").startswith(("resume", "hydra"))
    ]
    if changed:
        print(f"lightyard: resuming {run_dir} with: {' '.join(changed)}")
    kept = [
        # keys the resumed config already holds are set with ++ (add or override)
        "++" + a.lstrip("+") if a.startswith("+") and not a.startswith("++") else a
        for a in overrides
        if _value([a], "resume") is None and _value([a], "hydra.run.dir") is None
    ]
    flags = [a for a in argv if a.startswith("-")]
    overrides = [
        *kept,
        f"resume={run_dir}",
        f"hydra.run.dir={run_dir}",
        # the run's own .hydra/ (its config and first overrides) is never rewritten
        f"hydra.output_subdir=.hydra/{launch_subdir(run_dir)}",
    ]
    # the saved config joins the search path (with any the command line gives)
    return [*flags, *with_search_path(overrides, [str(run_dir)])]


def launch_subdir(run_dir: Path) -> str:
    """Where this resume's composed config and overrides go: .hydra/resume-NNN."""
    done = len(list((run_dir / ".hydra").glob("resume-*")))
    return f"resume-{done + 1:03d}"
