"""The wheel that ``python -m build`` makes works in a fresh venv outside the checkout.

The venv sees the machine's torch (and only torch with its own dependencies) through a
``.pth`` file, so nothing is downloaded twice; everything else (edgewise, pyzmq, msgpack,
numpy, tqdm and the PyPI package ``deno``) is installed by pip from the wheel's metadata. A
round then runs from a folder outside the checkout, through the packaged sidecar run by the
``deno`` package's binary, and its λ_max and λ_gen are checked against a dense reference.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from test_estimates_against_dense import lambda_gen_full_space

ROOT = Path(__file__).resolve().parents[2]

CHECK = r'''
import json, sys
from pathlib import Path
import numpy as np, torch
import edgewise
from edgewise._sidecar_location import find_sidecar

class RowModel(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(d, dtype=torch.float64))
    def forward(self, a):
        return a @ self.theta

def half_square(output, target):
    return 0.5 * ((output - target) ** 2).mean()

rows = torch.from_numpy(np.load(sys.argv[1]))
m, d = rows.shape
loc = find_sidecar()
report = edgewise.estimate(RowModel(d), half_square, (rows, torch.zeros(m, dtype=torch.float64)), n_train=m,
                           batch_size=2, tol=1e-10, bootstrap=0)
print(json.dumps({"module": edgewise.__file__, "root": str(loc.root), "deno": str(loc.deno),
                  "packaged": loc.packaged, "lambda_max": report.lambda_max, "lambda_gen": report.lambda_gen}))
'''


def _dependency_closure(name: str) -> set[str]:
    """``name`` and every distribution it needs (markers evaluated here, no extras)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        dist = canonicalize_name(todo.pop())
        if dist in seen:
            continue
        seen.add(dist)
        for line in md.requires(dist) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _link_machine_torch(farm: Path) -> None:
    """Symlinks torch and its dependencies (packages and dist-info) from this interpreter into
    ``farm``: a site folder with nothing else (no edgewise, no deno)."""
    farm.mkdir()
    for name in _dependency_closure("torch"):
        dist = md.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        base = Path(dist.locate_file(""))
        for top in tops:
            if not (farm / top).exists() and (base / top).exists():
                (farm / top).symlink_to(base / top)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT / "python_client")],
                   check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("edgewise-*.whl")
    return whl


def test_the_wheel_carries_the_sidecar_and_its_npm_modules(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("deno.json", "deno.lock", "sidecar/main.ts", "node_modules/msgpackr/package.json",
                 "node_modules/ml-matrix/package.json"):
        assert f"edgewise/_sidecar/{path}" in names
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "sidecar").rglob("*.ts") if not p.name.endswith("_test.ts")}
    assert {f"edgewise/_sidecar/{s}" for s in sources} <= names  # every source file, by glob
    assert not any(n.endswith("_test.ts") for n in names)


def test_a_fresh_venv_outside_the_checkout_runs_a_round(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())
    _link_machine_torch(tmp_path / "machine-torch")
    (site / "machine-torch.pth").write_text(str(tmp_path / "machine-torch") + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEWISE_", "VIRTUAL_ENV", "PYTHON"))}
    env["DENO_DIR"] = str(tmp_path / "deno-cache")  # a new user's empty cache
    pip = subprocess.run([py, "-m", "pip", "install", "--quiet", "-c", str(ROOT / "tools" / "constraints.txt"),
                          str(wheel)], env=env, capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    installed = subprocess.check_output([py, "-m", "pip", "list", "--format=json"], env=env, text=True)
    assert {"torch", "deno", "edgewise"} <= {p["name"] for p in json.loads(installed)}
    assert not list(site.glob("torch-*.dist-info")), "pip installed a second torch"

    work = tmp_path / "project"  # the user's own folder, outside the checkout
    work.mkdir()
    help_text = subprocess.run([py, "-m", "edgewise", "sidecar", "--help"], cwd=work, env=env, capture_output=True,
                               text=True, timeout=120)
    assert help_text.returncode == 0 and "--endpoint" in help_text.stdout, help_text.stderr

    rng = np.random.default_rng(5)
    rows = rng.standard_normal((12, 5))
    np.save(work / "rows.npy", rows)
    (work / "check.py").write_text(CHECK)
    packaged = site / "edgewise" / "_sidecar"
    before = sorted((p.relative_to(packaged).as_posix(), p.stat().st_mtime_ns) for p in packaged.rglob("*"))
    run = subprocess.run([py, "check.py", "rows.npy"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])

    assert Path(got["module"]).is_relative_to(site) and got["packaged"]
    assert Path(got["root"]) == packaged and Path(got["deno"]).is_relative_to(env_dir)
    m = len(rows)
    assert got["lambda_max"] == pytest.approx(float(np.linalg.eigvalsh(rows.T @ rows / m)[-1]), rel=1e-8)
    assert got["lambda_gen"] == pytest.approx(lambda_gen_full_space(rows, (m - 2) / (2 * (m - 1))), rel=1e-6)
    after = sorted((p.relative_to(packaged).as_posix(), p.stat().st_mtime_ns) for p in packaged.rglob("*"))
    assert after == before, "the sidecar wrote into site-packages"
