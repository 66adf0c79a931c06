"""LightningDataModules: each owns reading, splitting and batching one family of datasets."""
