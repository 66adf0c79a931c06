"""Prepare a data option into streamable shards: `python prepare.py data=mnist` (see README.md)."""

from lightyard.cli import prepare

if __name__ == "__main__":
    prepare()
