"""Node apps the tests run, installed on first use with ``npm ci``.

``npm ci`` runs in an app's folder when its ``node_modules`` is missing or older than
its package-lock.json -- or than any file of a local package it installs as a copy
(a ``file:`` dependency with ``install-links``, such as kits/express) -- under a
file lock, so parallel test processes (pytest-xdist, two ``make test``) install once
and never see a half-written tree.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path


def ensure_installed(app: Path, local_packages: Iterable[Path] = ()) -> None:
    """``npm ci`` in ``app`` unless its node_modules is newer than everything it is made of."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError(f"node and npm are needed for {app} (Node 20+)")
    sources = [app / "package-lock.json", *(f for pkg in local_packages for f in _files(pkg))]
    stamp = app / "node_modules" / ".package-lock.json"  # npm writes it last
    with (app / ".install.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if stamp.exists() and all(stamp.stat().st_mtime >= f.stat().st_mtime for f in sources):
            return
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=app,
                              capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"npm ci failed in {app}:\n{done.stdout}\n{done.stderr}")
        stamp.touch()  # a copied package's files keep their own times: they must not look newer


def _files(package: Path) -> list[Path]:
    return [f for f in package.rglob("*") if f.is_file() and "node_modules" not in f.parts]
