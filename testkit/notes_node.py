"""The notes app's new service in Node (tests/apps/notes_node): installed on first use.

``npm ci`` runs when ``node_modules`` is missing or older than package-lock.json,
under a file lock so parallel test processes (pytest-xdist, two ``make test``)
install once and never see a half-written tree.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from .procs import ROOT

NODE_APP = ROOT / "tests" / "apps" / "notes_node"
SERVER = NODE_APP / "server.js"


def ensure_installed() -> None:
    """``npm ci`` in the app's folder unless its node_modules is current."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm are needed for tests/apps/notes_node (Node 20+)")
    lock = NODE_APP / "package-lock.json"
    stamp = NODE_APP / "node_modules" / ".package-lock.json"  # npm writes it last
    with (NODE_APP / ".install.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
            return
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_APP,
                              capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"npm ci failed in {NODE_APP}:\n{done.stdout}\n{done.stderr}")


def node_argv(*, port: int, instance_id: str, redis_url: str, key_prefix: str, jwks_url: str,
              service: str = "notes", issuer: str = "strangler-gateway",
              session_key_file: Path | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    """The command line that starts one instance (after installing it if needed)."""
    ensure_installed()
    argv = ["node", str(SERVER), "--port", str(port), "--instance-id", instance_id,
            "--redis-url", redis_url, "--key-prefix", key_prefix, "--jwks-url", jwks_url,
            "--service", service, "--issuer", issuer]
    if session_key_file is not None:
        argv += ["--session-key-file", str(session_key_file)]
    return [*argv, *extra]
