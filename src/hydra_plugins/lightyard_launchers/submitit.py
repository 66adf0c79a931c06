"""hydra-submitit-launcher, made to run lightyard jobs: each job process registers lightyard's
config resolvers before Hydra resolves its config (the launcher pickles the config, not the
resolvers), and SLURM tasks of rank > 0 write no .hydra/ and log warnings only, so a multi-GPU,
multi-node job keeps one clean job directory. Used by `hydra/launcher=slurm` and `=local`."""

from __future__ import annotations

from typing import Any

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
        LocalLauncher,
        SlurmLauncher,
    )
except ImportError:  # the `slurm` extra is not installed: offer nothing
    LocalLauncher = SlurmLauncher = None


class _LightyardJob:
    def __call__(self, sweep_overrides: list[str], *args: Any, **kwargs: Any) -> Any:
        from lightyard.config import resolvers
        from lightyard.distributed.environment import external_rank

        resolvers.register()
        if external_rank() > 0:
            sweep_overrides = [
                *sweep_overrides,
                "hydra.output_subdir=null",
                "++hydra.job_logging.handlers.console.level=WARNING",
                "++hydra.job_logging.handlers.file.level=WARNING",
            ]
        return super().__call__(sweep_overrides, *args, **kwargs)


if LocalLauncher is not None:

    class LightyardLocalLauncher(_LightyardJob, LocalLauncher):
        """Each job in its own local process (tests, trying a SLURM sweep on a workstation)."""

    class LightyardSlurmLauncher(_LightyardJob, SlurmLauncher):
        """Each job a SLURM job; one task per GPU, Lightning reads ranks from SLURM."""
