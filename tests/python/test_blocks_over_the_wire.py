"""Blocks a real torch oracle sends through the real sidecar equal the ones computed in-process."""

from __future__ import annotations

import numpy as np
import torch

import edgewise

from _transport_helpers import stub_sidecar


def test_blocks_received_by_the_sidecar_equal_the_in_process_blocks():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    x, y = torch.randn(24, 6, dtype=torch.float64), torch.randn(24, 3, dtype=torch.float64)
    loss = torch.nn.functional.mse_loss

    local = edgewise.CurvatureOracle(model, loss, x, y, curvature="hessian")
    local.begin_round()
    local.execute("random", {"r": 4, "seed": 11})
    expected = local.execute("blocks", {"start": 0, "count": 4})["blocks"]

    proc = stub_sidecar()
    try:
        with edgewise.SidecarClient(proc.endpoint, timeout=30) as client:
            client.open_session({"id": "wire", "name": "wire", "params": local.params, "probe": 24, "n": 24,
                                 "batch_size": 4, "curvature": "hessian", "dtype": "f64"})
            remote = edgewise.CurvatureOracle(model, loss, x, y, curvature="hessian")
            remote.begin_round()
            report = client.run_round(remote, step=0, epoch=0, lr=0.1, batch_size=4, n=24,
                                      options={"stub_r": 4, "seed": 11, "stub_echo": True})
    finally:
        proc.stop()
    received = np.asarray(report["blocks_echo"]).reshape(24, 4, 4)
    assert expected.shape == (24, 4, 4)
    np.testing.assert_array_equal(received, expected)  # float64 travels bit for bit
    mean = expected.mean(axis=0)
    assert abs(report["lambda_max"] - np.linalg.eigvalsh(mean[:2, :2])[-1]) < 1e-12
