"""The `reckoning` command: one dispatcher above service, training and benchmarks, each imported only when used."""
