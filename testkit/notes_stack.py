"""The notes app behind a real gateway: the second monolith's whole stack of processes.

Two notes nodes (``python -m tests.apps.notes``, sessions in memory), two
instances of its new service in Node (tests/apps/notes_node) and one gateway
running the notes session profile (``NOTES_SESSION``). Everything else --
ports, keys, tokens, the Redis prefix, starting and stopping -- is ``Stack``'s.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from .notes_node import node_argv
from .procs import Proc
from .profiles import notes_session
from .stack import Stack

UNDECLARED = ("_csrf", "created_at", "flash")
"""The notes app's own keys that no route changes once a session has them (``history``,
also undeclared, is the visits route's)."""

STATE_PATHS = ["/api/state", "/api/me", "/api/prefs", "/api/prefs/*", "/api/tags",
               "/api/tags/*", "/api/visits/*", "/api/draft"]

NOTES_ROUTES: list[dict[str, Any]] = [
    # log in and out stay on the monolith: the new side has no users
    {"name": "auth", "paths": ["/login", "/logout"], "legacy_only": True},
    {"name": "state", "service": "notes", "guests": True, "paths": STATE_PATHS},
    {"name": "default", "paths": ["/*"], "legacy_only": True},
]


class NotesStack(Stack):
    """``Stack`` with the notes app on both sides: ``session`` overrides the profile
    (``duplicate_cookies`` for one). ``legacy_via`` (node -> URL, set before ``start``
    and followed by ``write_config``) puts something, a fault proxy, before a node.
    ``legacy_argv(node, port, token_file)`` starts another monolith with the notes
    app's routes and headers on the legacy side (the Express one, say)."""

    def __init__(self, workdir: Path, redis_url: str, *,
                 session: dict[str, Any] | None = None,
                 legacy_argv: Callable[[str, int, Path], list[str]] | None = None,
                 **kwargs: Any) -> None:
        self.session = session if session is not None else notes_session()
        self.legacy_argv = legacy_argv
        self.legacy_via: dict[str, str] = {}
        kwargs.setdefault("routes", copy.deepcopy(NOTES_ROUTES))
        super().__init__(workdir, redis_url, **kwargs)
        (self.dir / "internal-token").write_text(self.internal_token)
        (self.dir / "session-key").write_text(self.session_key)
        self.legacy = {n: self._notes_node(n, p) for n, p in self.legacy_ports.items()}
        self.new = {n: self._node_service(n, p) for n, p in self.new_ports.items()}

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["session"] = copy.deepcopy(self.session)
        for node in cfg["legacy"]["nodes"]:
            node["url"] = self.legacy_via.get(node["id"], node["url"])
        return cfg

    def _notes_node(self, node: str, port: int) -> Proc:
        token_file = self.dir / "internal-token"
        argv = [sys.executable, "-m", "tests.apps.notes", "--port", str(port), "--node", node,
                "--internal-token-file", str(token_file)]
        if self.legacy_argv is not None:
            argv = self.legacy_argv(node, port, token_file)
        return Proc(f"notes-{node}", argv, self.dir / "logs", env=self.env,
                    ready_url=f"http://127.0.0.1:{port}/healthz")

    def _node_service(self, instance: str, port: int) -> Proc:
        assert self.redis_url is not None
        argv = node_argv(port=port, instance_id=instance, redis_url=self.redis_url,
                         key_prefix=self.prefix,
                         jwks_url=f"{self.admin_url()}/.well-known/jwks.json",
                         session_key_file=self.dir / "session-key")
        return Proc(f"notes-node-{instance}", argv, self.dir / "logs", env=self.env,
                    ready_url=f"http://127.0.0.1:{port}/healthz")

    def init_db(self) -> None:
        """The notes app has no database (the gateway's ledger makes its own tables)."""

    def legacy_url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.legacy_ports[node]}"


def typed(value: Any) -> str:
    """A JSON value's text with its types visible (``1`` is not ``1.0``)."""
    return json.dumps(value, separators=(",", ":"))


async def exports(stack: NotesStack, sid: str) -> list[dict[str, Any]]:
    """Every legacy node's export of ``sid`` (those that hold it), read through the hook."""
    found = []
    async with aiohttp.ClientSession() as http:
        for node in stack.legacy_ports:
            url = f"{stack.legacy_url(node)}/_internal/sessions/{quote(sid, safe='')}"
            try:
                async with http.get(url, headers={"X-Internal-Token": stack.internal_token}
                                    ) as resp:
                    if resp.status == 200:
                        found.append(json.loads(await resp.read()))
                    elif resp.status != 404:
                        raise AssertionError(f"export from {node}: {resp.status}")
            except aiohttp.ClientConnectionError:
                continue  # a node that is down holds nothing
    return found


async def metric(stack: NotesStack, name: str, **labels: str) -> float:
    """The sum of a gateway counter's samples whose labels include ``labels``."""
    async with aiohttp.ClientSession() as http, \
            http.get(f"{stack.admin_url()}/metrics") as resp:
        text = await resp.text()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v
                                              for k, v in labels.items()))
