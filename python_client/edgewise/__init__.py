"""Edgewise: live mean-square stability margins for SGD training runs."""

__version__ = "0.1.0"
