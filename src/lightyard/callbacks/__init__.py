"""Callbacks for reliability: preemption, non-finite guard, and RNG state in checkpoints."""
