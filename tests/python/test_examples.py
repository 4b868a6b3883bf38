"""Every example runs as-is in its fast mode and prints what its header promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import edgewise

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, *args: str, timeout: float = 300) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_quadratic_threshold_settles_below_eta_star_and_blows_up_above():
    out = run_example("quadratic_threshold.py", "--fast")
    assert "As predicted: SGD is mean-square stable exactly below η*." in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("0.9", "1.0", "1.1"))]
    verdicts = {float(r[0]): r[-1] for r in rows}
    assert verdicts[0.95] == "settles" and verdicts[1.05] == "up", verdicts


def test_mnist_live_blocking_prints_a_report_every_epoch(tmp_path):
    out = run_example("mnist_live.py", "--fast", "--blocking", "--log-dir", str(tmp_path))
    epochs = [line for line in out.splitlines() if line.strip()[:1].isdigit() and "|" in line]
    assert len(epochs) == 3 and not any("skipped" in line for line in epochs), out
    assert "Last round:" in out and "margin" in out
    assert len((tmp_path / "edgewise.jsonl").read_text().splitlines()) == 3


def test_mnist_live_by_default_never_waits_and_shows_each_report_once(tmp_path):
    out = run_example("mnist_live.py", "--fast", "--log-dir", str(tmp_path))
    lines = out.splitlines()
    epochs = [line for line in lines if line.strip()[:1].isdigit() and "|" in line]
    shown = [line for line in lines if "(epoch " in line]
    logged = (tmp_path / "edgewise.jsonl").read_text().splitlines()
    assert len(epochs) == 3 and shown and len(shown) == len(logged), out
    assert "the loop waited" in out and "Last round:" in out


def test_mnist_live_rows_flag_unconverged_rounds_and_margins_above_one():
    sys.path.insert(0, str(ROOT / "examples"))
    from mnist_live import format_row

    base = dict(lambda_max=0.5, lambda_gen=0.8, eta_star=2.5, lr=2.0, suggested_lr=2.25, margin=0.8)
    assert not format_row(0, 0.1, 0.9, edgewise.StabilityReport(**base, converged=True)).endswith(("~", "!"))
    assert format_row(0, 0.1, 0.9, edgewise.StabilityReport(**base, converged=False)).endswith(" ~")
    unstable = edgewise.StabilityReport(**{**base, "margin": 1.2}, converged=False)
    assert format_row(0, 0.1, 0.9, unstable).endswith(" ~!")


def test_mnist_live_explains_the_flags_that_appeared():
    sys.path.insert(0, str(ROOT / "examples"))
    from mnist_live import flag_legend

    assert flag_legend(0, 0, 12) == []
    assert [line[0] for line in flag_legend(4, 0, 12)] == ["~"]
    unstable = flag_legend(0, 2, 12)
    assert len(unstable) == 1 and unstable[0].startswith("! 2 of 12") and "lower the lr" in unstable[0]
    assert [line[0] for line in flag_legend(1, 1, 3)] == ["~", "!"]


def test_checkpoint_report_reports_eta_star_and_the_batch_curve():
    out = run_example("checkpoint_report.py", "--fast")
    assert "η*     =" in out and "η*(B):" in out and "bound top_eigvec" in out


def test_adam_live_prints_adams_exact_threshold_beside_the_full_batch_value():
    out = run_example("adam_live.py", "--fast")
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit() and "|" in line]
    assert len(rows) == 3 and not any("skipped" in " ".join(r) for r in rows), out
    for r in rows:  # epoch loss acc | λ̃_max η* full-batch ratio lr margin η*_SGD | round s
        lam, eta, full, ratio, lr, margin = (float(v) for v in r[4:10])
        assert lam > 0 and 0 < eta and full > 0 and lr == 0.001
        assert ratio == pytest.approx(eta / full, rel=2e-3) and margin == pytest.approx(lr / eta, rel=2e-3)
    assert "AdamW" in out and "Last round: threshold of AdamW" in out and "full-batch threshold" in out


def test_adam_live_full_batch_value_is_adamws_deterministic_threshold():
    """AdamW at full batch: η = 2(1+β₁)/(ω(1+β₁) + (1−β₁)λ̃_max) (the dense second-moment map of
    examples/momentum_checks.py gives the same to 1e-14), checked on every printed row."""
    out = run_example("adam_live.py", "--fast")
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit() and "|" in line]
    assert len(rows) == 3, out
    for r in rows:
        lam, full = float(r[4]), float(r[6])
        assert full == pytest.approx(2 * 1.9 / (0.01 * 1.9 + 0.1 * lam), rel=3e-3), r
