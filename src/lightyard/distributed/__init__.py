"""Several processes, one run: the rank entry point, the launcher that starts local ranks from the
job's saved config, and the sharded-training strategies built from a backbone's blocks."""
