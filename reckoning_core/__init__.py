"""reckoning_core: fast weights, the differentiable inner loop, encode, answer, delta serialization."""

__version__ = "0.1.0"
