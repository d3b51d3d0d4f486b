"""Meta-training, the in-context baseline and evaluation for reckoning."""
