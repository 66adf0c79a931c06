"""Which training steps write logs: the only steps that may wait for the device."""

from __future__ import annotations


def loggers_write_this_step(trainer) -> bool:
    """Lightning's own test (its LearningRateMonitor and ThroughputMonitor use it; a private
    attribute: re-check on upgrades), and every step of a fast_dev_run."""
    return trainer._logger_connector.should_update_logs or bool(trainer.fast_dev_run)
