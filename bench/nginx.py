"""nginx (the Debian package) in two roles: a fast fixed upstream, and a reverse proxy.

Each instance runs in the foreground from its own directory (config, pid file,
error log, temp paths), one worker process, ``access_log off``:

- **upstream** (scenario H): answers every path with a body captured once from
  a real backend, with that backend's headers, on one port per backend it
  stands in for; ``GET /healthz`` answers exactly what the real backend's did
  (a legacy node's ``boot_id`` included, so the gateway does not think the node
  restarted). It costs tens of microseconds a request, so the proxy in front
  of it is the bottleneck, not the upstream.
- **proxy**: ``proxy_pass`` to one upstream with pooled keep-alive
  connections -- the C floor for "a reverse proxy" on this machine.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import sysstat
from testkit.procs import Proc

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass(frozen=True)
class Fixed:
    """What one location answers: status 200, this body and these headers."""

    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Site:
    """One port: exact-path answers, and a default for every other path."""

    default: Fixed
    exact: dict[str, Fixed] = field(default_factory=dict)


def available() -> bool:
    return os.access(NGINX, os.X_OK)


def _quote(text: str) -> str:
    """An nginx single-quoted string; ``$`` goes through the ``$dollar`` variable."""
    if "\n" in text:
        raise ValueError("nginx fixed bodies must be one line")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("$", "${dollar}") + "'"


def _location(where: str, fixed: Fixed) -> str:
    lines = [f"        location {where} {{",
             f"            default_type {_quote(fixed.content_type)};"]
    lines += [f"            add_header {name} {_quote(value)} always;"
              for name, value in fixed.headers.items()]
    lines += [f"            return 200 {_quote(fixed.body.decode())};", "        }"]
    return "\n".join(lines)


def _main(directory: Path, http_body: str, connections: int = 4096) -> str:
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {directory / ('tmp-' + kind)};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}worker_processes 1;\npid {directory / 'nginx.pid'};\n"
            f"error_log {directory / 'error.log'} warn;\n"
            f"events {{ worker_connections {connections}; }}\n"
            "http {\n    access_log off;\n    server_tokens off;\n"
            "    keepalive_requests 10000000;\n    keepalive_timeout 300s;\n"
            '    geo $dollar { default "$"; }\n'
            f"{temp}\n{http_body}}}\n")


def upstream_conf(directory: Path, sites: dict[int, Site]) -> str:
    servers = []
    for port, site in sites.items():
        locations = [_location(f"= {path}", fixed) for path, fixed in site.exact.items()]
        locations.append(_location("/", site.default))
        servers.append(f"    server {{\n        listen 127.0.0.1:{port} backlog=4096;\n"
                       + "\n".join(locations) + "\n    }\n")
    return _main(directory, "".join(servers))


def proxy_conf(directory: Path, port: int, upstream: str, connections: int = 4096) -> str:
    """``connections``: the worker's cap on client and upstream connections together
    (scenario H's memory rows hold thousands of idle clients)."""
    host = upstream.removeprefix("http://").rstrip("/")
    return _main(directory, (
        f"    upstream backend {{\n        server {host};\n        keepalive 64;\n"
        "        keepalive_requests 10000000;\n        keepalive_timeout 300s;\n    }\n"
        f"    server {{\n        listen 127.0.0.1:{port} backlog=4096;\n"
        "        location / {\n            proxy_pass http://backend;\n"
        "            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n'
        "            proxy_buffering on;\n        }\n    }\n"), connections)


@dataclass
class Nginx:
    proc: Proc
    directory: Path

    @property
    def pid(self) -> int:
        """The master; its worker is a child (CPU is counted over the process tree)."""
        if self.proc.popen is None:
            raise RuntimeError("nginx is not running")
        return self.proc.popen.pid


def version() -> str:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip()


@contextlib.contextmanager
def running(name: str, directory: Path, conf: str, ready_url: str,
            core: int | None) -> Iterator[Nginx]:
    """nginx in the foreground with ``conf``, its worker pinned to ``core`` when given."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "nginx.conf").write_text(conf)
    argv = [NGINX, "-p", str(directory), "-e", str(directory / "error.log"),
            "-c", str(directory / "nginx.conf"), "-g", "daemon off;"]
    proc = Proc(name, argv, directory, ready_url=ready_url)
    try:
        proc.start(timeout=15)
        server = Nginx(proc, directory)
        if core is not None:
            for pid in sysstat.process_tree(server.pid):
                sysstat.pin(pid, {core})
        yield server
    finally:
        proc.stop(timeout=5)

