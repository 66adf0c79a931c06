"""Task LightningModules: what is learned and measured. Each wraps a backbone nn.Module."""
