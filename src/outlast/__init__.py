"""outlast: a self-hosted AI continuity gateway."""

__version__ = "0.1.0"
