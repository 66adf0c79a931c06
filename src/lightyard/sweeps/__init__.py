"""Hyperparameter sweeps: Optuna studies behind a Hydra sweeper, trial pruning, parallel local
jobs and the end-of-sweep report. The Hydra plugin classes live in hydra_plugins.lightyard_sweepers
(Hydra only discovers plugins there) and delegate to these modules."""
