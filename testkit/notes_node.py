"""The notes app's new service in Node (tests/apps/notes_node): installed on first use
(``npm.ensure_installed``: ``npm ci`` under a file lock)."""

from __future__ import annotations

from pathlib import Path

from . import npm
from .procs import ROOT

NODE_APP = ROOT / "tests" / "apps" / "notes_node"
SERVER = NODE_APP / "server.js"


def ensure_installed() -> None:
    """``npm ci`` in the app's folder unless its node_modules is current."""
    npm.ensure_installed(NODE_APP)


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
