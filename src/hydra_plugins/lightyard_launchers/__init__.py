"""Hydra plugins of lightyard (Hydra discovers launchers only in the hydra_plugins namespace)."""
