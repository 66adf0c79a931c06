"""lightyard's Hydra plugins: the Optuna sweeper and the parallel local launcher."""
