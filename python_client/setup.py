"""Builds the edgewise package with the sidecar inside it (``edgewise/_sidecar/``).

The sidecar's TypeScript sources live at the repository root, outside this project folder, so
setuptools cannot list them as package data. Instead:

- a wheel built from the checkout (``pip install ./python_client``, ``python -m build``) copies
  ``deno.json``, ``deno.lock``, ``sidecar/**`` and the locked npm modules into
  ``edgewise/_sidecar/`` of the build;
- an sdist carries the same tree as ``edgewise/_sidecar/``, so a wheel built from the sdist
  (what ``python -m build`` does) finds it there;
- an editable install copies nothing: the client then runs the checkout's sidecar with
  ``tools/deno``.

The npm modules are those ``deno install`` put in ``node_modules/`` (run ``tools/bootstrap.sh``
first). Deno keeps them as symlinks into ``node_modules/.deno/<name>@<version>/``; wheels
cannot hold symlinks, so they are laid out flat, one real folder per package, as npm would,
and the client runs Deno with ``--node-modules-dir=manual`` so it only reads them (site-packages
may be read-only).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
STAGED = Path("edgewise") / "_sidecar"
# Everything of the sidecar that runs; globs, so files other branches add come along.
SIDECAR_GLOBS = ("deno.json", "deno.lock", "sidecar/**/*")
SKIP_SUFFIXES = ("_test.ts",)


def _repo_root() -> Path | None:
    root = HERE.parent
    return root if (root / "deno.json").is_file() and (root / "sidecar").is_dir() else None


def _copy_sources(root: Path, dest: Path) -> None:
    for pattern in SIDECAR_GLOBS:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and not path.name.endswith(SKIP_SUFFIXES):
                target = dest / path.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)


def _copy_node_modules(root: Path, dest: Path) -> None:
    """Lays out Deno's ``node_modules/.deno/<name>@<version>/node_modules/<name>`` flat."""
    store = root / "node_modules" / ".deno"
    if not store.is_dir():
        raise SystemExit(f"edgewise build: {store} is missing; run tools/bootstrap.sh (deno install) first")
    versions: dict[str, str] = {}
    for entry in sorted(store.iterdir()):
        if not entry.is_dir() or entry.name == "node_modules" or "@" not in entry.name[1:]:
            continue
        key, version = entry.name.rsplit("@", 1)
        name = key.replace("+", "/")
        if versions.setdefault(name, version) != version:
            raise SystemExit(f"edgewise build: two versions of npm package {name} ({versions[name]}, {version}); "
                             "the flat layout holds one")
        shutil.copytree(entry / "node_modules" / name, dest / "node_modules" / name, symlinks=False)


def stage_sidecar(dest: Path) -> None:
    """Puts the runnable sidecar in ``dest`` from an sdist's staged copy or from the checkout."""
    if dest.exists():
        shutil.rmtree(dest)
    staged = HERE / STAGED
    if (staged / "deno.json").is_file():  # building from an sdist
        shutil.copytree(staged, dest)
        return
    root = _repo_root()
    if root is None:
        raise SystemExit(f"edgewise build: no sidecar found (neither {staged} nor a checkout above {HERE})")
    _copy_sources(root, dest)
    _copy_node_modules(root, dest)


class BuildWithSidecar(build_py):
    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            stage_sidecar(Path(self.build_lib) / STAGED)


class SdistWithSidecar(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        stage_sidecar(Path(base_dir) / STAGED)


setup(cmdclass={"build_py": BuildWithSidecar, "sdist": SdistWithSidecar})
