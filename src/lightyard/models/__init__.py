"""Backbones: plain nn.Modules that map inputs to logits and know nothing of Lightning."""
