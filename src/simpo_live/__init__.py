"""simpo-live: SimPO preference training that pauses at exact steps to generate with its own engine."""

__version__ = "0.1.0"
