"""CURVE between the Python client and the sidecar (``--curve-keys``): an allowed client
completes rounds; a client with an unknown key and a client with no security are refused, and
the sidecar keeps serving the allowed one. All on 127.0.0.1."""

from __future__ import annotations

import pytest

from _transport_helpers import FakeOracle, run_meta, stub_sidecar
from edgewise.__main__ import main as edgewise_main
from edgewise._client import SidecarClient
from edgewise._curve import make_keys
from edgewise.errors import SidecarStartError, SidecarTimeout

REFUSED_TIMEOUT = 3.0


def round_kwargs(**kw):
    return {"step": 10, "epoch": 1, "lr": 0.05, "batch_size": 8, "n": 100, **kw}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    assert edgewise_main(["keys", str(d), "--client", "trainer"]) == 0
    stranger = make_keys(tmp_path_factory.mktemp("other"), client="stranger")[1]
    return {"dir": d, "server": d / "server.key", "trainer": d / "trainer.key_secret", "stranger": stranger}


@pytest.fixture(scope="module")
def sidecar(keys):
    proc = stub_sidecar("--curve-keys", str(keys["dir"]))
    yield proc
    proc.stop()


@pytest.fixture
def allowed(sidecar, keys):
    with SidecarClient(sidecar.endpoint, timeout=10, server_key=keys["server"], client_keys=keys["trainer"]) as c:
        c.open_session(run_meta())
        yield c


def test_allowed_client_completes_a_round(allowed):
    oracle = FakeOracle()
    assert allowed.run_round(oracle, **round_kwargs())["lambda_max"] == pytest.approx(oracle.expected_lambda())


def test_unknown_key_is_refused_and_the_allowed_client_keeps_being_served(sidecar, keys, allowed):
    with SidecarClient(sidecar.endpoint, timeout=REFUSED_TIMEOUT, server_key=keys["server"],
                       client_keys=keys["stranger"]) as stranger:
        with pytest.raises(SidecarTimeout, match="refused this client's CURVE key"):
            stranger.open_session(run_meta())
    oracle = FakeOracle(seed=3)
    assert allowed.run_round(oracle, **round_kwargs())["lambda_max"] == pytest.approx(oracle.expected_lambda())
    assert '"curve_refused"' in sidecar.log_path.read_text()


def test_client_without_security_is_refused_and_the_allowed_client_keeps_being_served(sidecar, allowed):
    with SidecarClient(sidecar.endpoint, timeout=REFUSED_TIMEOUT) as plain:
        with pytest.raises(SidecarTimeout, match="disagree on security"):
            plain.open_session(run_meta())
    oracle = FakeOracle(seed=4)
    assert allowed.run_round(oracle, **round_kwargs())["lambda_max"] == pytest.approx(oracle.expected_lambda())
    assert '"zmq_handshake_failed_' in sidecar.log_path.read_text()  # _protocol or _no_detail: who closes first


def test_client_keys_without_server_key_is_a_value_error(keys):
    with pytest.raises(ValueError, match="both server_key and client_keys"):
        SidecarClient("tcp://127.0.0.1:1", client_keys=keys["trainer"])


def test_curve_keys_folder_without_keys_stops_the_sidecar_with_a_clear_error(tmp_path):
    with pytest.raises(SidecarStartError, match="server.key_secret"):
        stub_sidecar("--curve-keys", str(tmp_path))


def test_estimate_and_monitor_take_curve_keys(keys, tmp_path):
    """The public API over CURVE with the real estimator: theory.md §7's worked example."""
    import torch

    import edgewise
    from edgewise._sidecar_process import SidecarProcess

    x = torch.tensor([[0, 0.3, -0.27], [-0.89, -0.45, -0.99], [0.06, 1.34, -0.49], [-0.62, 0.49, 0.36],
                      [0.11, -0.93, -0.03]], dtype=torch.float64)
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    model = torch.nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w.unsqueeze(0))

    def half_mse(out, target):
        return 0.5 * ((out.squeeze(-1) - target) ** 2).mean()

    proc = SidecarProcess(extra_args=["--curve-keys", str(keys["dir"]), "--no-dashboard", "--data-dir", str(tmp_path)]).start()
    curve = {"server_key": keys["server"], "client_keys": keys["trainer"]}
    try:
        report = edgewise.estimate(model, half_mse, (x, x @ w), n_train=5, batch_size=2, endpoint=proc.endpoint,
                                   tol=1e-12, **curve)
        assert report.lambda_gen == pytest.approx(0.982530638265, rel=1e-9)  # theory.md §7, B = 2
        monitor = edgewise.Monitor(model, half_mse, probe=(x, x @ w), n_train=5, batch_size=2,
                                   endpoint=proc.endpoint, console=False, timeout=30, blocking=True, **curve)
        try:
            assert monitor.end_epoch(0, lr=0.1).missing is False
        finally:
            monitor.close()
    finally:
        proc.stop()
