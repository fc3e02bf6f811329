"""dockernetd: Docker 1.x's bridge network driver as a standalone daemon."""

__version__ = "0.1.0"
