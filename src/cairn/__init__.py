"""cairn: a local-first personal memory daemon."""

__version__ = "0.1.0"
