"""`--help`: lightyard's config groups and their options, read from the config directory without
composing anything (Hydra's own help composes the whole config first, and lists the bases that
other options are built on, files named `_*.yaml`, as if they were options)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

# groups under conf/hydra/ that are lightyard's own choices; the rest of hydra/ is Hydra's
HYDRA_GROUPS = ("hydra/launcher", "hydra/sweeper", "hydra/sweeper/sampler", "hydra/sweeper/pruner")


def is_base(option: str) -> bool:
    """A config file other options are built on (through their defaults list), not an option."""
    return option.startswith("_")


def groups(config_dir: Path) -> dict[str, list[str]]:
    """Every config group under `config_dir` and its options (bases left out)."""
    found: dict[str, list[str]] = {}
    for folder in sorted(p for p in config_dir.rglob("*") if p.is_dir()):
        group = folder.relative_to(config_dir).as_posix()
        if group.startswith("hydra") and group not in HYDRA_GROUPS:
            continue
        options = sorted(f.stem for f in folder.glob("*.yaml") if not is_base(f.stem))
        if options:
            found[group] = options
    return found


def defaults(config_dir: Path, config_name: str = "train") -> dict[str, str]:
    """The option each group takes when the command line names none."""
    file = config_dir / f"{config_name}.yaml"
    if not file.is_file():
        return {}
    chosen = {}
    for entry in OmegaConf.to_container(OmegaConf.load(file)).get("defaults", []):
        if isinstance(entry, dict):
            for group, option in entry.items():
                if option is not None:
                    chosen[str(group).split("@")[0].removeprefix("override ")] = str(option)
    return chosen


USAGE = {
    "train": (
        "{script} [group=option ...] [key=value ...]",
        "{script} -m [group=option,option ...] [key=value,value ...]   (a sweep)",
        "{script} resume=<run dir> [trainer.max_epochs=N ...]   (continue a run in place)",
        "Examples: {script} model=resnet optimizer=sgd trainer.max_epochs=5",
        "          {script} -m hparams_search=digits_optuna",
    ),
    "eval": (
        "{script} run_dir=<a training run's directory> [key=value ...]",
        "{script} ckpt_path=<a .ckpt inside one> [key=value ...]",
        "The run's own config is reloaded; overrides apply on top (e.g. data.batch_size=256).",
    ),
    "predict": (
        "{script} run_dir=<a training run's directory> [inputs=<folder or file>] [key=value ...]",
        '{script} run_dir=<a language model\'s run> \'prompts=["The", "def main"]\'',
        "Writes predictions.csv (classes) or predictions.jsonl (generated text) in its own "
        "output directory; without inputs it predicts the run's test split.",
    ),
    "export": (
        "{script} run_dir=<a training run's directory> format=onnx|torchscript|hf",
        "Writes the model file and serving.json (preprocessing, labels, input shapes) in its "
        "own output directory, after a parity check against PyTorch.",
    ),
}


def switches(config_dir: Path, config_name: str) -> list[tuple[str, str, str]]:
    """(key, default, what it does) for each root key of a job on a trained run (eval, predict,
    export), the description being the first comment line above the key in its YAML."""
    file = config_dir / f"{config_name}.yaml"
    found, comment = [], ""
    for line in file.read_text().splitlines():
        if line.startswith("# ") and not comment:
            comment = line[2:]
        elif line and not line.startswith((" ", "#", "-")) and ":" in line:
            key, _, default = line.partition(":")
            if key != "defaults":
                found.append((key, default.strip(), comment))
            comment = ""
        elif not line.startswith("#"):
            comment = ""
    return found


def _header(script: str, first: str, more) -> list[str]:
    """The title and usage lines every entry point's help opens with."""
    return [
        "lightyard: train, evaluate, predict with and export deep-learning models (Lightning, "
        "Hydra).",
        "",
        "Usage: " + first.format(script=script),
        *("       " + line.format(script=script) for line in more if line.startswith("{")),
        *(line.format(script=script) for line in more if not line.startswith("{")),
        "",
    ]


def help_text(
    config_dir: Path,
    script: str,
    config_name: str = "train",
    project: Path | None = None,
    after: tuple[Path, ...] = (),
) -> str:
    """`project`: the config_dir of the user's project, whose options come first; `after`:
    directories --config-dir or hydra.searchpath add, whose options come after lightyard's
    (Hydra's order: a name lightyard has stays lightyard's)."""
    chosen = defaults(config_dir)
    first, *more = USAGE.get(config_name, USAGE["train"])
    if config_name in ("eval", "predict", "export"):
        return _after_training_help(config_dir, script, config_name, first, more)
    lines = [
        *_header(script, first, more),
        "Config groups (group=option; * marks the default"
        + ("; + an option of yours, ! one of your project's that replaces lightyard's)"
           if project or after else "):"),
    ]  # fmt: skip
    built_in = groups(config_dir)
    own = groups(project) if project else {}
    for folder in after:
        for group, options in groups(folder).items():
            known = set(built_in.get(group, []))
            own.setdefault(group, []).extend(o for o in options if o not in known)
    for group in sorted(built_in.keys() | own.keys(), key=lambda g: (g not in built_in, g)):
        mine = set(own.get(group, []))
        options = sorted(set(built_in.get(group, [])) | mine)
        shown = []
        for option in options:
            mark = "*" if chosen.get(group) == option else ""
            if option in mine:
                mark += "!" if option in built_in.get(group, []) else "+"
            shown.append(f"{mark}{option}")
        lines.append(f"  {group}: {', '.join(shown)}")
    if project:
        lines += ["", f"Your project's configs: {project} (they win over lightyard's own)."]
    for folder in after:
        lines += [f"Also searched: {folder} (after lightyard's own)."]
    lines += [
        "",
        f"The composed config, without running: {script} --cfg job",
        f"Check a config and exit: {script} <overrides> validate=true",
        f"Hydra's own flags: {script} --hydra-help",
        "Docs: README.md",
    ]
    return "\n".join(lines)


def _after_training_help(config_dir: Path, script: str, name: str, first: str, more) -> str:
    """A job on a trained run takes the run's config; only its own switches are new."""
    lines = [
        *_header(script, first, more),
        f"Switches (conf/{name}.yaml; key=value, the default after '='):",
    ]
    for key, default, comment in switches(config_dir, name):
        if key == "task_name":
            continue
        lines.append(f"  {key}={default}".ljust(28) + f" {comment}")
    lines += [
        "",
        "Any key of the run's config can be overridden too (e.g. data.batch_size=256).",
        f"Check the command and exit: {script} run_dir=<dir> <overrides> validate=true",
        "Docs: README.md",
    ]
    return "\n".join(lines)
