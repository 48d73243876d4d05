"""The stack file: how ``strangler demo`` and ``strangler rehearse --stack`` start an
application's own processes (its monolith's nodes, its new services, their setup).

The gateway config says *where* each legacy node and new instance listens; the
stack file, read beside it (``stack.yaml`` next to the config, or ``--stack-file``),
says *how to start* them. Parsed once into frozen objects like config.yaml: unknown
keys are refused and every error names its key path
(``legacy.argv[3]: unknown placeholder {prot}``)::

    name: trips                      # shown in the demo's banner
    databases:                       # named; the first is the default
      trips: {}                      # SQLite file trips.db in the run directory
      shop: {from_config: true}      # the one config's database.url names
      reports: {url: "postgresql+asyncpg://..."}   # an existing one: never emptied
    secrets: [django_key]            # {secret_file:django_key}: a random token, made once
    setup:                           # once, in order, before any process; each must exit 0
      - {name: migrate, argv: ["{python}", manage.py, migrate], cwd: legacy,
         env: {TRIPS_DB: "{database_file:trips}"}}
    legacy:                          # one process per legacy.nodes entry of the config
      argv: [gunicorn, --bind, "{host}:{port}", trips.wsgi]
      env: {TRIPS_NODE_ID: "{node}"}
      cwd: legacy                    # from the stack file's folder (default: strangler's own)
      ready: /healthz                # readiness path (default: config's health.path)
    new:                             # one process per new.instances entry
      argv: ["{python}", -m, trips_new, --port, "{port}", --redis-url, "{redis_url}"]

Placeholders, in argv, env values, cwd and ready: see ``PLACEHOLDERS``; ``{{`` and
``}}`` are literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PLACEHOLDERS: dict[str, str] = {
    "python": "the Python running strangler (its virtualenv's)",
    "config": "the gateway config file the stack runs with (a --stack run writes its own)",
    "run_dir": "the run directory: .strangler/ for the demo, OUT/stack/ for --stack",
    "redis_url": "the Redis the gateway uses (a private one when the config names none)",
    "key_prefix": "the gateway's Redis key prefix (redis.key_prefix)",
    "admin_url": "the gateway's admin listener, http://HOST:PORT",
    "gateway_url": "the gateway's proxy listener, http://HOST:PORT",
    "jwks_url": "the gateway's public keys: ADMIN_URL/.well-known/jwks.json",
    "issuer": "the iss of the gateway's tokens (tokens.issuer)",
    "internal_token_file": "a file holding the export hook's token (legacy.internal_token)",
    "session_key_file": "a file holding the session key (tokens.session_key)",
    "database_url:NAME": "database NAME as a SQLAlchemy URL (sqlite+aiosqlite:///...)",
    "database_file:NAME": "database NAME's SQLite file (absolute path)",
    "secret_file:NAME": "a file (mode 0600) holding secret NAME, made once per run directory",
    "node": "legacy and new only: the node's or instance's id in the config",
    "host": "legacy and new only: the host the process listens on",
    "port": "legacy and new only: the port the process listens on",
}
"""Every placeholder, with what it stands for."""

OWN = frozenset({"node", "host", "port"})
"""A process's own placeholders: meaningless in a setup step, which runs once."""

_TOKEN = re.compile(r"\{\{|\}\}|\{([a-z_]+)(?::([A-Za-z0-9_-]+))?\}|[{}]")
NAME = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StackFileError(Exception):
    """The stack file is unreadable or invalid; ``str()`` lists every problem by key path."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Database(_Frozen):
    """A SQLite file in the run directory (``file``, default ``NAME.db``; emptied before
    each run unless ``--keep-data``), or an existing database (``url``), or the
    database config.yaml's ``database.url`` names (``from_config``)."""

    file: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str | None = None
    from_config: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> Database:
        given = [k for k in ("file", "url") if getattr(self, k) is not None]
        if self.from_config and given:
            raise ValueError(f"from_config takes the config's database.url; drop {given[0]}")
        if len(given) > 1:
            raise ValueError("give file or url, not both")
        return self


class Command(_Frozen):
    argv: tuple[str, ...] = Field(min_length=1)
    env: dict[str, str] = {}
    cwd: str | None = None
    """Relative to the stack file's folder. Default: the directory strangler runs in,
    where the config's relative paths resolve (the gateway runs there too)."""


class Step(Command):
    name: NAME
    timeout_s: float = Field(300.0, gt=0, le=3600)


class Role(Command):
    name: str = ""
    """The process's name in logs and messages (default ``legacy-{node}``, ``new-{node}``)."""
    ready: str | None = None
    """Readiness path, answered 2xx once the process serves (default: config's health.path)."""
    ready_within_s: float = Field(30.0, gt=0, le=600)


class StackSpec(_Frozen):
    name: str = "app"
    databases: dict[NAME, Database] = {}
    secrets: tuple[NAME, ...] = ()
    """The app's own secrets (a framework's signing key): each a random token in
    ``RUN_DIR/secrets/NAME``, made on first use and kept for the run directory."""
    setup: tuple[Step, ...] = ()
    legacy: Role
    new: Role
    hint: str | None = None
    """A line for the demo's banner: what to try first."""
    home: str = Field("/", pattern=r"^/[!-~]*$")
    """The app's first page, shown in the demo's banner (an API without one at ``/``
    names a route that answers, such as ``/api/destinations``)."""

    @model_validator(mode="after")
    def _unique_steps(self) -> StackSpec:
        names = [s.name for s in self.setup]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"setup: duplicate name: {', '.join(dupes)}")
        return self

    @property
    def default_database(self) -> str | None:
        return next(iter(self.databases), None)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith(("function-", "tagged-")):
            out += f".{part}" if out else part
    return out or "(top level)"


def placeholders_in(text: str) -> list[tuple[str, str | None]]:
    """``(name, argument)`` of each placeholder; ValueError for a lone brace."""
    found = []
    for m in _TOKEN.finditer(text):
        if m.group(0) in ("{{", "}}"):
            continue
        if m.group(1) is None:
            raise ValueError(f"lone {m.group(0)!r} (write {m.group(0) * 2} for a brace)")
        found.append((m.group(1), m.group(2)))
    return found


def render(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each placeholder replaced; ``values`` keys are ``name`` or
    ``name:argument``. The stack file was checked at parse, so all are known."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        key = m.group(1) if m.group(2) is None else f"{m.group(1)}:{m.group(2)}"
        return values[key]

    return _TOKEN.sub(sub, text)


def _problem(name: str, arg: str | None, databases: Mapping[str, Database],
             secrets: tuple[str, ...], once: bool) -> str | None:
    if name in ("database_url", "database_file"):
        if arg is None:
            return f"{{{name}}} needs a database name: {{{name}:NAME}}"
        if arg not in databases:
            known = ", ".join(databases) or "none declared"
            return f"{{{name}:{arg}}}: no database {arg!r} in databases ({known})"
        db = databases[arg]
        if name == "database_file" and db.url is not None:
            return f"{{database_file:{arg}}}: database {arg!r} is a url, not a SQLite file"
        return None
    if name == "secret_file":
        if arg is None or arg not in secrets:
            known = ", ".join(secrets) or "none declared"
            return f"{{secret_file:{arg or 'NAME'}}}: name one of secrets ({known})"
        return None
    if arg is not None or name not in PLACEHOLDERS:
        return f"unknown placeholder {{{name}{':' + arg if arg else ''}}} " \
               f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})"
    if once and name in OWN:
        return f"{{{name}}} is a process's own; a setup step runs once, for no process"
    return None


def templates(spec: StackSpec) -> list[tuple[str, str]]:
    """Every text placeholders may appear in, with its key path."""
    parts: list[tuple[str, Command]] = [(f"setup[{i}]", s) for i, s in enumerate(spec.setup)]
    parts += [("legacy", spec.legacy), ("new", spec.new)]
    texts = []
    for where, cmd in parts:
        texts += [(f"{where}.argv[{i}]", a) for i, a in enumerate(cmd.argv)]
        texts += [(f"{where}.env.{k}", v) for k, v in cmd.env.items()]
        if cmd.cwd is not None:
            texts.append((f"{where}.cwd", cmd.cwd))
        if isinstance(cmd, Role):
            texts += [(f"{where}.{k}", v) for k, v in (("name", cmd.name), ("ready", cmd.ready))
                      if v is not None]
    return texts


def used(spec: StackSpec) -> set[str]:
    """The placeholders the stack file uses (``name`` or ``name:argument``)."""
    return {name if arg is None else f"{name}:{arg}" for _, text in templates(spec)
            for name, arg in placeholders_in(text)}


def _check_templates(spec: StackSpec) -> list[str]:
    problems = [f"{where}.env.{k}: not a variable name"
                for where, cmd in [*((f"setup[{i}]", s) for i, s in enumerate(spec.setup)),
                                   ("legacy", spec.legacy), ("new", spec.new)]
                for k in cmd.env if not ENV_NAME.match(k)]
    for key, text in templates(spec):
        try:
            found = placeholders_in(text)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            continue
        problems += [f"{key}: {p}" for name, arg in found
                     if (p := _problem(name, arg, spec.databases, spec.secrets,
                                       key.startswith("setup")))]
    for role in ("legacy", "new"):
        ready = getattr(spec, role).ready
        if ready is not None and not ready.startswith("/"):
            problems.append(f"{role}.ready: a path, starting with /")
    return problems


def parse(data: Any, source: str = "stack file") -> StackSpec:
    """Validate a loaded YAML document; raise StackFileError naming every bad key."""
    if not isinstance(data, dict):
        raise StackFileError(f"{source}: the top level must be a mapping "
                             "(name, databases, setup, legacy, new)")
    try:
        spec = StackSpec.model_validate(data)
    except ValidationError as exc:
        lines = [f"{_path(e['loc'])}: "
                 + ("unknown key" if e["type"] == "extra_forbidden"
                    else e["msg"].removeprefix("Value error, "))
                 for e in exc.errors()]
        raise StackFileError(f"{source}: invalid stack file\n  " + "\n  ".join(lines)) from None
    problems = _check_templates(spec)
    if problems:
        raise StackFileError(f"{source}: invalid stack file\n  " + "\n  ".join(problems))
    return spec


def load(path: Path) -> StackSpec:
    try:
        text = path.read_text()
    except OSError as exc:
        raise StackFileError(f"{path}: cannot read the stack file: {exc.strerror} "
                             "(give --stack-file, or put stack.yaml next to the config)"
                             ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path}: not valid YAML: {exc}") from None
    return parse(data, str(path))


def default_path(config_path: Path) -> Path:
    """``stack.yaml`` in the config file's folder."""
    return config_path.parent / "stack.yaml"
