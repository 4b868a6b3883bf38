"""Where the sidecar's sources and the Deno that runs them are: an installed package or a checkout.

Two layouts exist:

- **installed** (a wheel or ``pip install ./python_client``): the sources, ``deno.json``,
  ``deno.lock`` and the locked npm modules lie in ``edgewise/_sidecar/`` (see
  ``python_client/setup.py``), and Deno is the binary of the PyPI package ``deno``. That folder
  may be read-only (a system site-packages), so Deno runs with ``--node-modules-dir=manual``
  (it reads the shipped modules and never installs or rewrites them) and ``--frozen`` (the
  lock is checked, never written); its own cache goes to ``DENO_DIR`` as usual.
- **checkout** (the repository, an editable install): ``tools/deno run -A sidecar/main.ts``
  from the repository root, as the development tools do.

Example:
    >>> loc = find_sidecar()
    >>> (loc.root / "deno.json").is_file() and loc.command("--help")[-1] == "--help"
    True
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import SidecarStartError

PACKAGED = Path(__file__).resolve().parent / "_sidecar"


@dataclass(frozen=True)
class SidecarLocation:
    """A runnable sidecar: its folder (``deno.json``, ``sidecar/``) and the Deno executable."""

    root: Path
    deno: Path
    packaged: bool

    def command(self, *args: str) -> list[str]:
        """The command line that runs ``sidecar/main.ts`` with ``args``."""
        if self.packaged:
            flags = ["--node-modules-dir=manual", "--frozen", "--config", str(self.root / "deno.json")]
            return [str(self.deno), "run", "-A", *flags, str(self.root / "sidecar" / "main.ts"), *args]
        return [str(self.deno), "run", "-A", "sidecar/main.ts", *args]

    @property
    def cwd(self) -> Path | None:
        """Working folder of the child: the checkout's root; the caller's own for a package
        (the sidecar's default ``./edgewise-data`` then lands beside the training run)."""
        return None if self.packaged else self.root


def find_sidecar() -> SidecarLocation:
    """The sidecar to run: ``$EDGEWISE_ROOT`` (a checkout), else the installed package's copy,
    else the checkout this file lies in.

    Raises:
        SidecarStartError: none of them exists, or the installed copy has no Deno.
    """
    env = os.environ.get("EDGEWISE_ROOT")
    if env:
        root = Path(env)
        if not (root / "tools" / "deno").exists():
            raise SidecarStartError(f"EDGEWISE_ROOT={env} has no tools/deno")
        return SidecarLocation(root, root / "tools" / "deno", packaged=False)
    if (PACKAGED / "deno.json").is_file():
        return SidecarLocation(PACKAGED, _packaged_deno(), packaged=True)
    for d in PACKAGED.parents:
        if (d / "deno.json").is_file() and (d / "tools" / "deno").exists():
            return SidecarLocation(d, d / "tools" / "deno", packaged=False)
    raise SidecarStartError(
        f"cannot find the Edgewise sidecar: no {PACKAGED} (an installed package) and no repository "
        f"checkout (deno.json and tools/deno) above {PACKAGED.parent}; reinstall edgewise or set EDGEWISE_ROOT"
    )


def _packaged_deno() -> Path:
    """``$EDGEWISE_DENO``, else the binary of the PyPI package ``deno`` (a dependency)."""
    env = os.environ.get("EDGEWISE_DENO")
    if env:
        return Path(env)
    try:
        from deno import find_deno_bin  # type: ignore[import-not-found]

        return Path(find_deno_bin())
    except (ImportError, FileNotFoundError) as exc:
        raise SidecarStartError(
            f"the sidecar needs Deno: `pip install 'deno>=2.9,<2.10'` (or set EDGEWISE_DENO); {type(exc).__name__}: {exc}"
        ) from exc
