"""Shared pieces of the transport tests: a numpy fake oracle and a stub sidecar."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from edgewise._sidecar_process import SidecarProcess


def run_meta(m: int = 4, d: int = 3, name: str = "test") -> dict[str, Any]:
    """SPEC §3 run metadata with a fresh id."""
    return {
        "id": f"{name}-{uuid.uuid4().hex[:8]}", "name": name, "params": d, "probe": m, "n": 100,
        "batch_size": 8, "curvature": "hessian", "dtype": "f64",
    }


class FakeOracle:
    """Explicit per-sample Hessians ``H`` (m x d x d); ``random`` appends coordinate axes, so
    after the stub's ``reset, random(2), blocks(0, 2)`` its λ is the top eigenvalue of the
    leading 2x2 of ``mean(H)``, which tests compute with numpy."""

    def __init__(self, m: int = 4, d: int = 3, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        a = rng.standard_normal((m, d, d))
        self.H = a + a.transpose(0, 2, 1)
        self.V = np.zeros((d, 0))
        self.calls: list[str] = []

    @property
    def probe_size(self) -> int:
        return self.H.shape[0]

    @property
    def basis_size(self) -> int:
        return self.V.shape[1]

    def expected_lambda(self) -> float:
        return float(np.linalg.eigvalsh(self.H.mean(0)[:2, :2])[-1])

    def execute(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(op)
        m, d, _ = self.H.shape
        if op == "reset":
            self.V = np.zeros((d, 0))
            return {"basis": 0, "hvps": 0}
        if op == "random":
            k, r = self.basis_size, min(args["r"], d - self.basis_size)
            self.V = np.eye(d)[:, : k + r]
            return {"kept": r, "basis": self.basis_size, "hvps": 0}
        if op == "blocks":
            s, c = args["start"], args["count"]
            blocks = np.einsum("ak,iab,bc->ikc", self.V, self.H, self.V[:, s : s + c])
            return {"blocks": blocks, "basis": self.basis_size, "hvps": m * c}
        raise NotImplementedError(op)


def stub_sidecar(*extra: str, endpoint: str | None = None) -> SidecarProcess:
    """A started sidecar running the transport stub runner."""
    return SidecarProcess(endpoint, extra_args=["--runner", "stub", "--log-level", "debug", *extra]).start()
