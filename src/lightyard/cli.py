"""Command-line entry points. Only Hydra, OmegaConf and lightyard's torch-free config layer are
imported here, so `--help`, `--cfg` and tab completion answer at once; torch and Lightning load
inside the task functions."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from lightyard.config import resolvers
from lightyard.config.compose import config_dir
from lightyard.errors import ConfigError, Preempted, RunFailed, exit_with, message_of

# the jobs that load a trained run's config and checkpoint (run_dir=... or ckpt_path=...)
AFTER_TRAINING = ("eval", "predict", "export")


def _check_before_start(config_name: str) -> None:
    """Validate the command line's config before Hydra makes a run directory (and before torch
    loads); `validate=true` stops here with exit code 0 when all is well."""
    from lightyard.config import validate
    from lightyard.config.command_line import config_flags, should_check, with_search_path

    argv = sys.argv[1:]
    if not should_check(argv):
        return
    # --config-dir adds to the search path and --config-name picks the root config, as Hydra
    # will: the check composes the same config
    dirs, name, argv = config_flags(argv)
    if dirs:
        argv = with_search_path(argv, dirs)
    try:
        cfg = validate.check_command_line(config_dir(), name or config_name, argv)
        check_checkpoints(cfg, config_name)
    except ConfigError as error:
        exit_with(error)
    if cfg.get("validate"):
        print("lightyard: the config is valid (validate=true: nothing was run)")
        sys.exit(0)


def check_checkpoints(cfg: DictConfig, config_name: str) -> None:
    """The checkpoint a run would start from is read now, before a run directory exists: one
    that does not load, or was written for another model, is a bad input like any other.
    torch loads here only when a checkpoint is named (the run is about to load it anyway)."""
    named = cfg.get("ckpt_path")
    resume = cfg.get("resume") if config_name == "resume" else None
    run_dir = cfg.get("run_dir") if config_name in AFTER_TRAINING else None
    if not (named or resume or run_dir):
        return
    from lightyard.runs import checkpoint_files

    trusted = bool(cfg.get("trusted_checkpoint", False))
    if resume:
        if checkpoint_files.latest_good_checkpoint(Path(resume), trusted) is None:
            raise ConfigError(
                f"resume: no checkpoint in {resume}/checkpoints loads (each is corrupt, truncated "
                "or not a checkpoint). Allowed: a run with a readable checkpoint. Fix: start a "
                "new run (the run directory is left as it was)"
            )
        return
    key = "ckpt_path" if named else "run_dir"
    path = Path(named) if named else checkpoint_files.find_best_checkpoint(Path(run_dir))
    state = checkpoint_files.read(path, key=key, trusted=trusted)
    checkpoint_files.check_fits_model(state, cfg, path, key=key)


def _check_job(cfg: DictConfig) -> None:
    """Jobs of a sweep are checked one by one (the sweep's values are known only here)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from lightyard.config import validate

    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return  # single runs were checked before Hydra started
    validate.check(cfg)
    check_checkpoints(cfg, "train")


def _run(job, cfg: DictConfig, check) -> Any:
    """One job under the failure policy of lightyard.runs.failures: a bad input leaves nothing
    behind, a stopped run says how to resume, a failure of the machine names the file and the
    way out, and a crash keeps its traceback in the run directory."""
    from lightyard.runs import failures

    output_dir = Path(cfg.paths.output_dir)
    try:
        check(cfg)
        return job(cfg)
    except ConfigError as error:
        if not cfg.get("resume"):
            failures.discard_unstarted(output_dir, Path(cfg.paths.log_dir))
        if output_dir.is_dir():
            failures.mark_failed(output_dir, f"{message_of(error)}")
        exit_with(error)
    except (Preempted, RunFailed) as stop:
        exit_with(stop)
    except Exception as error:
        if _sweep_outcome(error):
            raise  # a pruned trial: the sweeper records it
        failure = failures.io_failure(error, output_dir)
        if failure is not None:
            failures.mark_failed(output_dir, str(failure))
            exit_with(failure)
        crash = failures.record_crash(output_dir, error)
        if os.environ.get("LIGHTYARD_TRACEBACK") == "1" or _in_sweep():
            raise  # a sweep's job: the sweeper records the failure and its reason
        resume = (
            f" Checkpoints written before are intact; resume={output_dir} continues from the "
            "newest."
            if _fits()
            else ""
        )
        print(
            f"lightyard: crashed: {type(error).__name__}: {message_of(error)}\n"
            f"That is a bug, or an error lightyard does not explain yet: the traceback is in "
            f"{crash or 'the log'} (LIGHTYARD_TRACEBACK=1 prints it).{resume}",
            file=sys.stderr,
        )
        sys.exit(1)


def _sweep_outcome(error: BaseException) -> bool:
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(error, optuna.TrialPruned)


def _fits() -> bool:
    """This job trains (train.py or a resume), so its checkpoints are worth pointing at."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.initialized() and HydraConfig.get().job.config_name in ("train", "resume")


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _train_job(cfg: DictConfig) -> float | None:
    def job(cfg: DictConfig):
        from lightyard.runs.train import train as run_train

        return run_train(cfg)

    return _run(job, cfg, _check_job)


def _eval_job(cfg: DictConfig) -> dict[str, float] | None:
    def job(cfg: DictConfig):
        from lightyard.runs.evaluate import evaluate as run_evaluate

        return run_evaluate(cfg)

    return _run(job, cfg, _check_job)


def _predict_job(cfg: DictConfig):
    def job(cfg: DictConfig):
        from lightyard.runs.predict import predict as run_predict

        return run_predict(cfg)

    return _run(job, cfg, _check_job)


def _export_job(cfg: DictConfig):
    def job(cfg: DictConfig):
        from lightyard.runs.export import export as run_export

        return run_export(cfg)

    return _run(job, cfg, _check_job)


def _print_help_if_asked(config_name: str, project=None) -> None:
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        from lightyard.config.command_line import entry_command, searched_dirs
        from lightyard.config.help import help_text

        shown = config_name if config_name in AFTER_TRAINING else "train"
        own = project.config_dir if project else None
        after = tuple(Path(d) for d in searched_dirs(sys.argv[1:]) if Path(d).is_dir())
        print(help_text(config_dir(), entry_command(), shown, project=own, after=after))
        sys.exit(0)


def activate_project():
    """The user's project (lightyard.config.project) on the import path of this process and of
    every process it starts; its configs join through Hydra's search path. Returns it (None
    outside a project)."""
    from lightyard.config.project import ProjectError, activate, find_project

    try:
        project = find_project()
    except ProjectError as error:
        exit_with(ConfigError(f"{error}"))
    activate(project)
    return project


def _main(job, config_name: str) -> None:
    """Help, the checks before the start, then Hydra; a stop signal at any moment (imports and
    composition included) is one message and its exit code."""
    from lightyard.signals import StopOutsideTraining

    project = activate_project()
    _print_help_if_asked(config_name, project)
    try:
        with StopOutsideTraining():
            resolvers.register()
            _check_before_start(config_name)
            main = hydra.main(
                config_path=str(config_dir()), config_name=config_name, version_base="1.3"
            )
            main(job)()
    except Preempted as stop:
        exit_with(stop)


def train() -> None:
    """`lightyard-train` / `python train.py`: fit, then test the best checkpoint."""
    from lightyard.distributed.environment import external_rank_overrides
    from lightyard.runs.resume import resume_arguments

    try:
        resumed = resume_arguments(sys.argv[1:])
    except ConfigError as error:
        exit_with(error)
    if resumed is not None:
        sys.argv[1:] = resumed
    with external_rank_overrides() as overrides:
        sys.argv += overrides
        _main(_train_job, "resume" if resumed is not None else "train")


PREPARE_USAGE = """usage: lightyard-prepare [--cfg job] data=<option> [data.<key>=<value> ...]

Writes a data option once into LitData shards and prints the train.py line that streams them.
Any image option (image_folder, mnist, fashion_mnist, cifar10, digits) or text option
(text_files, hf_text, text_files_lm, stdlib_lm ...), with the option's own keys, and:
  data.prepare_workers=N        processes that write in parallel (default: every core)
  data.prepare_dir=DIR          where prepared sets go (default: <paths.data_dir>/prepared)
  data.prepare_chunk_bytes=64MB the most bytes in one chunk file
  data.prepare_image_format=auto  image folders: pixels (decoded here), encoded, or auto
                                (pixels up to data.image_size 64)
--cfg job prints the composed config and prepares nothing. A second prepare of the same
source does nothing; a killed one resumes when run again."""


def prepare(argv: list[str] | None = None) -> None:
    """`lightyard-prepare` / `python prepare.py data=<option>`: the option written once into
    streamable shards (no run directory: the prepared set is the output)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    activate_project()
    overrides = list(sys.argv[1:] if argv is None else argv)
    if overrides[:1] in (["-h"], ["--help"]):
        print(PREPARE_USAGE)
        return
    show = overrides[:2] == ["--cfg", "job"]
    resolvers.register()
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            cfg = compose("prepare", overrides=overrides[2:] if show else overrides)
        if show:
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(cfg))
            return
        from lightyard.runs.prepare import prepare as run_prepare

        run_prepare(cfg)
    except ConfigError as error:
        exit_with(error)
    except (HydraException, OmegaConfBaseException) as error:
        exit_with(ConfigError(f"prepare: {error}. Fix: correct that override"))


def _after_training(job, config_name: str) -> None:
    """A job on a trained run: its saved config joins the composition (checked first)."""
    from lightyard.config.command_line import with_search_path
    from lightyard.runs.run_dirs import eval_search_path_override

    try:
        run_dir = eval_search_path_override(sys.argv[1:], config_name)
    except ConfigError as error:
        exit_with(error)
    if run_dir:
        sys.argv[1:] = with_search_path(sys.argv[1:], [run_dir])
    _main(job, config_name)


def evaluate() -> None:
    """`lightyard-eval` / `python eval.py run_dir=...`: test a trained run with its own config."""
    _after_training(_eval_job, "eval")


def predict() -> None:
    """`lightyard-predict` / `python predict.py run_dir=... [inputs=...]`: predictions.csv."""
    _after_training(_predict_job, "predict")


def export() -> None:
    """`lightyard-export` / `python export.py run_dir=... format=onnx|torchscript|hf`."""
    _after_training(_export_job, "export")


def _dashboard(study_dir: Path, host: str, port: int) -> None:
    """optuna-dashboard on the study's SQLite file (it replaces this process)."""
    import shutil

    database = study_dir / "study.db"
    if not database.is_file():
        exit_with(
            ConfigError(
                f"dashboard: {study_dir} holds no study.db. Allowed: a sweep's study directory "
                "(<log_dir>/<task>/studies/<study name>, printed when the sweep starts). Fix: "
                "give that directory, or run optuna-dashboard <storage URL> for another storage"
            )
        )
    # the one installed beside this interpreter (a venv's bin/, not on PATH), else PATH's
    beside = Path(sys.executable).parent / "optuna-dashboard"
    program = str(beside) if beside.is_file() else shutil.which("optuna-dashboard")
    if program is None:
        exit_with(
            ConfigError(
                "dashboard: optuna-dashboard is not installed. Fix: pip install "
                "'lightyard[tracking]' (or pip install optuna-dashboard)"
            )
        )
    url = f"sqlite:///{database.resolve()}"
    print(f"lightyard: serving {url} at http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    os.execv(program, [program, url, "--host", host, "--port", str(port)])


def main(argv: list[str] | None = None) -> None:
    """`lightyard init <dir>`: a new project of your own (lightyard.scaffold);
    `lightyard dashboard <study dir>`: the study in optuna-dashboard."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="lightyard",
        description="lightyard's project tools; runs start with lightyard-train, "
        "lightyard-eval, lightyard-predict and lightyard-export, and lightyard-prepare writes "
        "a data option once into shards for data=streaming.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser(
        "init", help="a new project: a model, a DataModule, their configs, an experiment, "
        "an Optuna search, a test and a README",
    )  # fmt: skip
    init.add_argument("directory", type=Path, help="a new or empty directory")
    board = commands.add_parser(
        "dashboard", help="serve an Optuna study directory's study.db with optuna-dashboard"
    )
    board.add_argument("study_dir", type=Path, help="a sweep's study directory (holds study.db)")
    board.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    board.add_argument("--port", type=int, default=8080, help="port to serve on (8080)")
    args = parser.parse_args(argv)
    if args.command == "dashboard":
        _dashboard(args.study_dir, args.host, args.port)
        return
    from lightyard.scaffold import init as scaffold
    from lightyard.scaffold import package_name

    try:
        written = scaffold(args.directory)
    except ConfigError as error:
        exit_with(error)
    name = package_name(args.directory)
    print(f"lightyard: wrote {len(written)} files into {args.directory}:")
    for path in written:
        print(f"  {path.relative_to(args.directory)}")
    print(f"Next: cd {args.directory} && lightyard-train experiment={name}")
