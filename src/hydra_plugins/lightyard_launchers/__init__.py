"""lightyard's Hydra launcher plugins: parallel local jobs, and submitit (SLURM, local) made to
run lightyard jobs. Hydra discovers plugins only in the hydra_plugins namespace."""
