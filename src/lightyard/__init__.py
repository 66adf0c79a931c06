"""lightyard: run, compare and scale deep-learning experiments with Lightning and Hydra.

Importing the package is cheap on purpose: the CLI must answer --help and --cfg without torch.
"""

__version__ = "0.1.0"
