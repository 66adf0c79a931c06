"""Benchmarks: scripts that compare inside one run and print ratios (see README, Benchmarks)."""
