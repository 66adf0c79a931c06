"""lightyard's Hydra sweeper plugin: Optuna on current Optuna and SQLAlchemy releases."""
