"""``strangler``: run the parts, check the config, move the flags.

    strangler [--config FILE] gateway|legacy|services|check-config
    strangler [--config FILE] demo [--stack-file FILE] [--keep-data]
    strangler flags list | set ROUTE STAGE [--percent N] [--reason TEXT] | kill on|off | reset
    strangler keys generate
    strangler shadow report ROUTE [--admin URL] [--json]
    strangler session discover [--admin URL | --hook URL --session-id SID...] [--stats]
    strangler rehearse PLAN.yaml [--stack] | drill rollback [--stack]
    strangler hook check URL --token-file F [--session-id SID] [--json]   (no config needed)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from flags.text import REASON_MAX
from gateway.settings import Config, ConfigError, Node, RedisSection, load
from strangler import discover_cli, gateway_cli, shadow_cli
from strangler.hookcheck import cli as hook_cli
from strangler.rehearse import cli as rehearse_cli

DEFAULT_CONFIG = os.environ.get("STRANGLER_CONFIG", "config.yaml")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="strangler", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gateway", help="run the gateway (one process, or --workers N)")
    g.add_argument("--redis-url")
    g.add_argument("--port", type=int, help="override gateway.listen.port")
    g.add_argument("--admin-port", type=int, help="override gateway.admin_listen.port")
    gateway_cli.add_options(g)

    leg = sub.add_parser("legacy", help="run one node of the demo monolith")
    leg.add_argument("--node-id", required=True)
    leg.add_argument("--port", type=int, help="default: the port of this node in config")

    svc = sub.add_parser("services", help="run one instance of the new services")
    svc.add_argument("--instance-id", required=True)
    svc.add_argument("--port", type=int, help="default: the port of this instance in config")
    svc.add_argument("--redis-url")

    demo = sub.add_parser("demo", help="start the whole stack on localhost")
    demo.add_argument("--stack-file", type=Path,
                      help="how to start the app's processes (default: stack.yaml next to "
                           "the config file)")
    demo.add_argument("--keep-data", action="store_true",
                      help="keep the demo database from the last run (default: fresh seed)")
    check = sub.add_parser("check-config", help="validate the config file (and the stack "
                           "file next to it, if any) and exit")
    check.add_argument("--stack-file", type=Path, help="a stack file to validate too")

    flags = sub.add_parser("flags", help="show or move route flags")
    flags.add_argument("--redis-url")
    fsub = flags.add_subparsers(dest="flags_command", required=True)
    fsub.add_parser("list", help="every route's stage")
    fset = fsub.add_parser("set", help="move a route to a stage")
    fset.add_argument("route")
    fset.add_argument("stage", help="legacy | shadow | canary | new | complete")
    fset.add_argument("--percent", type=int, help="share of sessions on new (canary)")
    fset.add_argument("--reason", default="", help="why (kept with the change): one line, "
                      f"at most {REASON_MAX} characters, no control characters")
    fkill = fsub.add_parser("kill", help="send every route to legacy (on) or release (off)")
    fkill.add_argument("state", choices=("on", "off"))
    fkill.add_argument("--reason", default="", help="why (as for set)")
    fsub.add_parser("reset", help="drop runtime overrides: config.yaml's stages apply again")
    fhist = fsub.add_parser("history", help="the migration ledger: who moved what, when, why")
    fhist.add_argument("route", nargs="?")
    fhist.add_argument("--limit", type=int, default=50)
    funpin = fsub.add_parser("unpin", help="release sessions pinned to new on a route")
    funpin.add_argument("route")

    exp = sub.add_parser("explain", help="which backend a request would get, and why")
    exp.add_argument("method")
    exp.add_argument("path")
    exp.add_argument("--session", help="a shop_session id")
    exp.add_argument("--cid", help="a strangler_cid cookie (what a canary buckets by "
                                   "when there is no session)")
    exp.add_argument("--admin", help="admin URL of a running gateway (default: from config)")
    exp.add_argument("--json", action="store_true")

    keys = sub.add_parser("keys", help="make the local JWT key pair and tokens")
    keys.add_argument("action", choices=("generate",))
    shadow_cli.add_parser(sub)
    discover_cli.add_parser(sub)
    rehearse_cli.add_parsers(sub)
    hook_cli.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # output piped into `head` or a pager that quit: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own advice:
        return 141                                # no second error when stdout is flushed at exit


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "hook":  # checks someone else's monolith: this config plays no part
        try:
            return hook_cli.run(args)
        except KeyboardInterrupt:
            return 130
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        if args.command == "session":  # discovery comes before a config: it may need none
            return discover_cli.run(None, args)
        print(f"strangler: {exc}", file=sys.stderr)
        return 2
    if args.command in ("flags", "explain", "check-config", "keys", "session"):
        from gateway.observe import log

        log.configure("warning", sys.stderr)  # a terminal command: its output is the answer
    handler = {
        "gateway": _gateway, "legacy": _legacy, "services": _services, "demo": _demo,
        "check-config": _check, "flags": _flags, "keys": _keys, "explain": _explain,
        "shadow": shadow_cli.run, "session": discover_cli.run,
        "rehearse": rehearse_cli.run_rehearse, "drill": rehearse_cli.run_drill,
    }[args.command]
    try:
        return handler(cfg, args)
    except ConfigError as exc:
        print(f"strangler: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(coro)  # type: ignore[arg-type]


def _with_listen(cfg: Config, port: int | None, admin_port: int | None,
                 redis: RedisSection | None) -> Config:
    gw = cfg.gateway
    if port is not None:
        gw = gw.model_copy(update={"listen": gw.listen.model_copy(update={"port": port})})
    if admin_port is not None:
        gw = gw.model_copy(update={
            "admin_listen": gw.admin_listen.model_copy(update={"port": admin_port})})
    return cfg.model_copy(update={"gateway": gw, "redis": redis or cfg.redis})


def _gateway(cfg: Config, args: argparse.Namespace) -> int:
    from strangler import runtime

    def overridden(base: Config) -> Config:
        return _with_listen(base, args.port, args.admin_port,
                            runtime.redis_section(base.redis, args.redis_url))

    return gateway_cli.run(overridden(cfg), args, lambda: overridden(load(args.config)), _run)


def _port(members: tuple[Node, ...], wanted: str, given: int | None, where: str) -> int:
    """``--port`` if given, else the port of ``wanted`` in config.yaml."""
    if given is not None:
        return given
    member = next((m for m in members if m.id == wanted), None)
    if member is None:
        known = ", ".join(m.id for m in members)
        raise ConfigError(f"{where}: no {wanted!r} (known: {known}); "
                          "give --port to run one outside the config")
    return urlparse(member.url).port or 80


def _legacy(cfg: Config, args: argparse.Namespace) -> int:
    from legacy_shop.cli import main as legacy_main

    port = _port(cfg.legacy.nodes, args.node_id, args.port, "legacy.nodes")
    token = cfg.legacy.internal_token.read()
    if token:
        os.environ["STRANGLER_INTERNAL_TOKEN"] = token
    return legacy_main([
        "serve", "--node-id", args.node_id,
        "--port", str(port), "--database-url", cfg.database.url,
        "--log-level", cfg.gateway.log_level,
    ])


def _services(cfg: Config, args: argparse.Namespace) -> int:
    from new_services.cli import main as services_main
    from strangler import runtime

    port = _port(cfg.new.instances, args.instance_id, args.port, "new.instances")
    redis = runtime.redis_section(cfg.redis, args.redis_url)
    if redis is None:
        raise ConfigError("redis: not set and no demo running; give --redis-url")
    key = cfg.tokens.session_key.read()
    if key:
        os.environ["STRANGLER_SESSION_KEY"] = key  # to the service, never on a command line
    return services_main([
        "serve", "--instance-id", args.instance_id,
        "--port", str(port),
        "--database-url", cfg.database.url, *_redis_args(redis),
        "--key-prefix", cfg.redis.key_prefix, "--session-ttl", str(cfg.redis.session_ttl_s),
        "--jwks", str(cfg.tokens.jwks_file), "--jwt-issuer", cfg.tokens.issuer,
        "--jwks-url", _jwks_url(cfg),
    ])


def _jwks_url(cfg: Config) -> str:
    """The gateway's key set, on its admin listener (config's first gateway)."""
    host = cfg.gateway.admin_listen.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (a wildcard bind is reached on loopback)
        host = "127.0.0.1"
    return f"http://{host}:{cfg.gateway.admin_listen.port}/.well-known/jwks.json"


def _redis_args(redis: RedisSection) -> list[str]:
    """new_services' options for ``redis``; passwords travel in the environment."""
    from gateway.session.redis_client import secret_value
    from strangler_sdk.redis_client import PASSWORD_ENV, SENTINEL_PASSWORD_ENV

    secrets: dict[str, str | None] = {}
    if redis.sentinel is not None:
        s = redis.sentinel
        secrets = {PASSWORD_ENV: secret_value(s.password, "redis.sentinel.password"),
                   SENTINEL_PASSWORD_ENV: secret_value(s.sentinel_password,
                                                       "redis.sentinel.sentinel_password")}
        args = ["--redis-sentinel", f"{s.master_name}@{','.join(s.nodes)}"]
    elif redis.cluster is not None:
        secrets = {PASSWORD_ENV: secret_value(redis.cluster.password, "redis.cluster.password")}
        args = ["--redis-cluster", ",".join(redis.cluster.nodes)]
    else:
        args = ["--redis-url", redis.url or ""]
    os.environ.update({env: value for env, value in secrets.items() if value})
    return args


def _demo(cfg: Config, args: argparse.Namespace) -> int:
    from strangler.demo import run_demo
    from strangler.launch import StackError
    from strangler.stackfile import StackFileError, default_path, load

    stack_file = args.stack_file or default_path(Path(args.config))
    try:
        spec = load(stack_file)
        return run_demo(cfg, Path(args.config), spec, stack_file.resolve().parent,
                        keep_data=args.keep_data)
    except (StackFileError, StackError) as exc:
        print(f"strangler: {exc}", file=sys.stderr)
        return 2


def _check(cfg: Config, args: argparse.Namespace) -> int:
    routes = ", ".join(f"{r.name}={'legacy-only' if r.legacy_only else r.stage.value}"
                       for r in cfg.routes)
    print(f"{args.config}: OK ({len(cfg.legacy.nodes)} legacy nodes, "
          f"{len(cfg.new.instances)} new instances; routes: {routes})")
    from strangler.stackfile import StackFileError, default_path, load

    stack_file = args.stack_file or default_path(Path(args.config))
    if args.stack_file is None and not stack_file.exists():
        return 0  # a gateway's config needs no stack file; demo and --stack do
    try:
        spec = load(stack_file)
    except StackFileError as exc:
        print(f"strangler: {exc}", file=sys.stderr)
        return 2
    print(f"{stack_file}: OK ({spec.name}; setup: "
          f"{', '.join(s.name for s in spec.setup) or 'none'}; "
          f"databases: {', '.join(spec.databases) or 'none'})")
    return 0


def _keys(cfg: Config, args: argparse.Namespace) -> int:
    from strangler.keys import ensure_keypair, ensure_token

    made = ensure_keypair(cfg.tokens.private_key_file, cfg.tokens.jwks_file)
    print(f"signing key: {cfg.tokens.private_key_file} ({'created' if made else 'exists'})")
    for label, secret in (("internal token", cfg.legacy.internal_token),
                          ("admin token", cfg.gateway.admin_token),
                          ("session key", cfg.tokens.session_key)):
        if secret.file:
            ensure_token(secret.file)
            print(f"{label}: {secret.file}")
    return 0


def _explain(cfg: Config, args: argparse.Namespace) -> int:
    from strangler.explain_cli import run

    return run(cfg, args)


def _flags(cfg: Config, args: argparse.Namespace) -> int:
    from strangler.flags_cli import run

    return run(cfg, args, actor=f"cli:{getpass.getuser()}")
