"""Edgewise: live mean-square stability margins for SGD training runs.

The client is a curvature oracle; a Deno sidecar computes the exact generalized sharpness
``lambda_gen`` of Mulayoff & Michaeli and the threshold ``eta_star = 2 / lambda_gen``.
"""

__version__ = "0.1.0"

from . import _console  # noqa: F401  (the `edgewise` logger's default stderr handler)

# Attaching to a training run
from .monitor import EdgewiseWarning, Monitor
from .stability_lr import LRChange, StabilityLR

# One-shot reports
from .estimate import estimate
from .report import StabilityReport

# Building blocks: the curvature oracle and the sidecar connection
from .oracle import CurvatureOracle
from ._client import SidecarClient

# Errors (one per protocol error code)
from .errors import (
    EdgewiseError,
    OracleFailed,
    ProtocolError,
    SidecarStartError,
    SidecarTimeout,
    VersionMismatch,
)

__all__ = [
    # attaching to a training run
    "Monitor",
    "StabilityLR",
    "LRChange",
    "EdgewiseWarning",
    # one-shot reports
    "estimate",
    "StabilityReport",
    # building blocks
    "CurvatureOracle",
    "SidecarClient",
    # errors
    "EdgewiseError",
    "ProtocolError",
    "SidecarTimeout",
    "SidecarStartError",
    "OracleFailed",
    "VersionMismatch",
]
