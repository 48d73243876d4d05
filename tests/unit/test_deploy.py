"""deploy/ agrees with the code and with deploy/config.yaml.

No container engine or cluster runs here, so this reads what would be deployed --
the Dockerfile and its ignore file, deploy/compose.yaml, deploy/k8s/*.yaml -- and
holds every port, probe path, command line, mount and secret reference to the thing
it must match: the config the manifests mount, the CLIs' own argument parsers, the
routes the applications really register, and the environment variables the code
really reads. Every failure names the file and the key.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from sqlalchemy.engine import make_url

from gateway.edge.hosts import AdminHosts
from gateway.settings import Config, Secret, load
from legacy_shop.cli import TOKEN_ENV
from strangler import cli as strangler_cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
CONFIG_FILE = DEPLOY / "config.yaml"
COMPOSE_FILE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
SECRETS_TEMPLATE = K8S / "secrets.template.yaml"
CONFIG_MOUNT = "/etc/strangler/config/config.yaml"
"""Where every container finds deploy/config.yaml."""
PLACEHOLDER = "REPLACE_ME"
PG_PASSWORD_ENV = "PGPASSWORD"
"""asyncpg reads it when the URL carries no password (deploy/config.yaml's does not)."""
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (what a container must listen on)
SECRET_LIKE = re.compile(r"PASSWORD|TOKEN|SECRET|(^|_)KEY($|_)|CREDENTIAL", re.I)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ------------------------------------------------------------------ loading
@pytest.fixture(scope="module")
def cfg() -> Config:
    return load(CONFIG_FILE)


def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


@dataclass
class Obj:
    file: Path
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    @property
    def name(self) -> str:
        return str(self.doc["metadata"]["name"])

    def where(self, key: str = "") -> str:
        return f"{rel(self.file)}: {self.kind}/{self.name}" + (f" {key}" if key else "")


@pytest.fixture(scope="module")
def objs() -> list[Obj]:
    out = []
    for path in k8s_files():
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict) and "kind" in doc, f"{rel(path)}: a document with no kind"
            out.append(Obj(path, doc))
    return out


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    hits = [o for o in objs if o.kind == kind and o.name == name]
    assert len(hits) == 1, f"deploy/k8s: expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict), \
        f"{rel(COMPOSE_FILE)}: services: missing"
    return doc


# ------------------------------------------------------------------ the Dockerfile
@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages() -> list[Stage]:
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip()
        elif op == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        else:
            assert stages, f"{rel(DOCKERFILE)}: {op} before FROM"
            stages[-1].instructions.append((op, rest.strip()))
    return stages


def exec_form(stage: Stage, op: str) -> list[str]:
    found = [rest for o, rest in stage.instructions if o == op]
    assert found, f"{rel(DOCKERFILE)}: final stage: no {op}"
    value = json.loads(found[-1])
    assert isinstance(value, list), f"{rel(DOCKERFILE)}: {op} must be the exec (JSON) form"
    return [str(v) for v in value]


def image_entrypoint() -> list[str]:
    return exec_form(dockerfile_stages()[-1], "ENTRYPOINT")


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, rest in dockerfile_stages()[-1].instructions:
        if op == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                env[key] = value
    return env


def image_user() -> str:
    users = [rest for op, rest in dockerfile_stages()[-1].instructions if op == "USER"]
    assert users, f"{rel(DOCKERFILE)}: final stage: USER missing (the image would run as root)"
    return users[-1]


def test_dockerfile_is_a_slim_multi_stage_python_311_image() -> None:
    stages = dockerfile_stages()
    where = rel(DOCKERFILE)
    assert len(stages) >= 2, f"{where}: FROM: expected a multi-stage build"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert "3.11" in requires
    for stage in stages:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base), \
            f"{where}: FROM {stage.base}: expected python:3.11-slim (pyproject: {requires})"
    build = "\n".join(rest for s in stages[:-1] for op, rest in s.instructions if op == "RUN")
    assert re.search(r"pip install \.(\s|$)", build), f"{where}: RUN: the project is not installed"
    final = stages[-1]
    assert not any(op == "RUN" and "pip install" in rest for op, rest in final.instructions), \
        f"{where}: final stage: installs packages itself (build them in an earlier stage)"
    assert any(op == "COPY" and "--from=" in rest for op, rest in final.instructions), \
        f"{where}: final stage: nothing copied from the build stage"


def test_image_runs_as_non_root_with_the_strangler_entrypoint(objs: list[Obj]) -> None:
    where = rel(DOCKERFILE)
    user = image_user()
    uid = user.split(":")[0]
    assert uid not in ("root", "0") and uid.isdigit(), \
        f"{where}: USER {user}: run as a numeric non-root uid (Kubernetes can then verify it)"
    entry = image_entrypoint()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry == ["strangler"] and "strangler" in scripts, \
        f"{where}: ENTRYPOINT {entry}: expected the [project.scripts] entry point 'strangler'"
    assert image_env().get("STRANGLER_CONFIG") == CONFIG_MOUNT, \
        f"{where}: ENV STRANGLER_CONFIG: expected {CONFIG_MOUNT}"
    assert 'os.environ.get("STRANGLER_CONFIG"' in Path(strangler_cli.__file__).read_text(), \
        "strangler/cli.py no longer reads $STRANGLER_CONFIG: deploy/Dockerfile ENV relies on it"
    for o in objs:
        for key, pod in pod_specs(o):
            ctx = pod.get("securityContext", {})
            assert ctx.get("runAsNonRoot") is True and str(ctx.get("runAsUser")) == uid, \
                o.where(f"{key}.securityContext: runAsNonRoot/runAsUser {uid} (the image's USER)")


def test_image_exposes_and_prepares_what_the_config_needs(cfg: Config) -> None:
    where = rel(DOCKERFILE)
    final = dockerfile_stages()[-1]
    exposed = {int(p.split("/")[0]) for op, rest in final.instructions if op == "EXPOSE"
               for p in rest.split()}
    wanted = {cfg.gateway.listen.port, cfg.gateway.admin_listen.port} | {
        port_of(n.url) for n in (*cfg.legacy.nodes, *cfg.new.instances)}
    assert wanted <= exposed, \
        f"{where}: EXPOSE {sorted(exposed)}: missing {sorted(wanted - exposed)}"
    runs = " ".join(rest for op, rest in final.instructions if op == "RUN")
    assert cfg.flags.unleash is not None
    for what, path in (("tokens.private_key_file", cfg.tokens.private_key_file),
                       ("tokens.jwks_file", cfg.tokens.jwks_file),
                       ("flags.unleash.snapshot_file", cfg.flags.unleash.snapshot_file)):
        directory = str(path.parent)
        assert re.search(rf"chown \S+ [^&]*{re.escape(directory)}(\s|$)", runs), (
            f"{where}: RUN chown: {directory} (deploy/config.yaml {what}) must exist and belong "
            "to the image's user, so a fresh volume mounted there is writable")


def test_dockerignore_admits_only_what_the_build_copies() -> None:
    """An allowlist: ``*`` first, then ``!`` exactly the build stage's COPY sources, so
    .strangler/ (tokens, the signing key), .env files, .venv and .git never reach it."""
    where = rel(DOCKERIGNORE)
    rules = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert rules[:1] == ["*"], f"{where}: the first rule must be '*' (an allowlist)"
    admitted = {r[1:].strip("/") for r in rules if r.startswith("!")}
    sources = [src.strip("/") for op, rest in dockerfile_stages()[0].instructions
               if op == "COPY" and "--from=" not in rest for src in rest.split()[:-1]]
    for src in sources:
        assert (ROOT / src).exists(), f"{rel(DOCKERFILE)}: COPY {src}: no such file"
    assert admitted == set(sources), \
        f"{where}: admits {sorted(admitted)}, the build copies {sorted(sources)}"
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()
                and any(re.fullmatch(pat.replace("*", ".*"), p.name) for pat in include)}
    assert packages <= admitted, \
        f"{rel(DOCKERFILE)}: COPY: packages pyproject installs but the image lacks: " \
        f"{sorted(packages - admitted)}"
    for inside in ("**/.strangler", "**/.env"):  # re-excluded inside admitted directories
        assert inside in rules, f"{where}: {inside} missing"


def test_no_secret_in_the_image() -> None:
    for stage in dockerfile_stages():
        for op, rest in stage.instructions:
            if op in ("ENV", "ARG"):
                for key in re.findall(r"(\w+)=", rest) or rest.split()[:1]:
                    assert not SECRET_LIKE.search(key), f"{rel(DOCKERFILE)}: {op} {key}: " \
                        "secrets come from the runtime, never the image"
            if op in ("COPY", "ADD"):
                assert ".strangler" not in rest and ".env" not in rest, \
                    f"{rel(DOCKERFILE)}: {op} {rest}: copies local secrets"


# ------------------------------------------------------------------ deploy/config.yaml
def test_config_is_valid_and_production_shaped(cfg: Config,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    where = rel(CONFIG_FILE)
    assert strangler_cli.main(["--config", str(CONFIG_FILE), "check-config"]) == 0, \
        f"{where}: `strangler check-config` refuses it: {capsys.readouterr().err}"
    assert cfg.gateway.listen.host == ALL_INTERFACES, \
        f"{where}: gateway.listen.host: expected {ALL_INTERFACES}"
    assert cfg.gateway.admin_listen.host == ALL_INTERFACES, \
        f"{where}: gateway.admin_listen.host: expected 0.0.0.0 (probes come from outside)"
    assert not cfg.gateway.debug_backend_header, f"{where}: gateway.debug_backend_header: on"
    assert cfg.redis.url, f"{where}: redis.url: the gateway needs one"
    db = make_url(cfg.database.url)
    assert db.get_backend_name() == "postgresql", f"{where}: database.url: expected PostgreSQL"
    assert db.password is None, f"{where}: database.url: a password in the URL ($PGPASSWORD)"
    assert cfg.flags.provider == "unleash" and cfg.flags.unleash is not None, \
        f"{where}: flags.provider: expected unleash"
    for what, secret in config_secrets(cfg):
        assert secret.env, f"{where}: {what}.env: name the environment variable"
        assert secret.file is None, (
            f"{where}: {what}.file: the manifests provide secrets as environment variables; "
            "a file would need its own Secret mount")


def config_secrets(cfg: Config) -> list[tuple[str, Secret]]:
    out: list[tuple[str, Secret]] = [("gateway.admin_token", cfg.gateway.admin_token),
                                     ("legacy.internal_token", cfg.legacy.internal_token)]
    out += [(f"gateway.admin_tokens[{i}]", s) for i, s in enumerate(cfg.gateway.admin_tokens)]
    if cfg.flags.unleash is not None:
        out += [("flags.unleash.client_token", cfg.flags.unleash.client_token),
                ("flags.unleash.admin_token", cfg.flags.unleash.admin_token)]
    return out


def port_of(url: str) -> int:
    return urlparse(url).port or 80


def host_of(url: str) -> str:
    return urlparse(url).hostname or ""


# ------------------------------------------------------------------ what the code serves
@pytest.fixture(scope="module")
def served() -> dict[str, set[str]]:
    """GET paths each component really registers (apps built, nothing connected)."""
    from gateway.admin.api import create_admin_app
    from legacy_shop.app import create_app
    from legacy_shop.settings import Settings as LegacySettings
    from new_services.app import make_app
    from new_services.settings import Settings as ServiceSettings

    def paths(app: Any) -> set[str]:
        return {r.resource.canonical for r in app.router.routes() if r.method == "GET"}

    return {
        "gateway-admin": paths(create_admin_app(None)),  # type: ignore[arg-type]
        "legacy": paths(create_app(LegacySettings())),
        "services": paths(make_app(ServiceSettings(
            instance_id="probe", database_url="sqlite+aiosqlite://",
            redis_url="redis://127.0.0.1:1", jwks_path=Path("jwks.json")))),
    }


PROBES = {  # component -> (readiness path, liveness path, the app that must serve both)
    "gateway": ("/readyz", "/healthz", "gateway-admin"),
    "legacy": ("/healthz", "/healthz", "legacy"),  # the monolith serves no /readyz
    "services": ("/readyz", "/healthz", "services"),
}


def test_probe_paths_are_served(cfg: Config, served: dict[str, set[str]]) -> None:
    for component, (ready, live, app) in PROBES.items():
        assert {ready, live} <= served[app], f"{component}: {app} serves no {ready} or {live}"
    for component in ("legacy", "services"):  # what the gateway's own health checks ask
        assert cfg.health.path in served[component], \
            f"{rel(CONFIG_FILE)}: health.path {cfg.health.path}: {component} does not serve it"


# ------------------------------------------------------------------ commands
@dataclass
class Command:
    component: str
    """gateway | legacy | services | init-db | keys"""
    args: Any


def parse_command(argv: list[str], where: str) -> Command:
    """Parse ``argv`` with the parser of the program it runs, as the container would."""
    from legacy_shop.cli import build_parser as legacy_parser
    from new_services.cli import build_parser as services_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            if argv[:1] == ["strangler"]:
                args = strangler_cli.build_parser().parse_args(argv[1:])
                component = "keys" if args.command == "keys" else args.command
            elif argv[:3] == ["python", "-m", "legacy_shop"]:
                args = legacy_parser().parse_args(argv[3:])
                component = "legacy" if args.command == "serve" else args.command
            elif argv[:3] == ["python", "-m", "new_services"]:
                args = services_parser().parse_args(argv[3:])
                component = "services"
            else:
                pytest.fail(f"{where}: {argv}: not a strangler, legacy_shop or new_services "
                            "command")
    except SystemExit:
        why = (err.getvalue().strip().splitlines() or ["?"])[-1]
        pytest.fail(f"{where}: `{' '.join(argv)}` is refused by its parser: {why}")
    return Command(component, args)


def check_gateway_args(cfg: Config, args: Any, where: str) -> None:
    assert args.config == CONFIG_MOUNT, f"{where}: --config {args.config}: expected {CONFIG_MOUNT}"
    for flag, given, want in (("--port", args.port, cfg.gateway.listen.port),
                              ("--admin-port", args.admin_port, cfg.gateway.admin_listen.port)):
        assert given in (None, want), f"{where}: {flag} {given}: deploy/config.yaml says {want}"
    assert args.redis_url is None, f"{where}: --redis-url: overrides deploy/config.yaml redis.url"


def check_legacy_args(cfg: Config, args: Any, where: str) -> None:
    ports = {port_of(n.url) for n in cfg.legacy.nodes}
    assert args.host == ALL_INTERFACES, f"{where}: --host {args.host}: unreachable from other pods"
    assert args.port in ports, f"{where}: --port {args.port}: legacy.nodes use {sorted(ports)}"
    assert args.database_url == cfg.database.url, \
        f"{where}: --database-url: differs from deploy/config.yaml database.url"
    assert args.log_level == cfg.gateway.log_level, f"{where}: --log-level {args.log_level}"
    assert args.internal_token_file is None, \
        f"{where}: --internal-token-file: the token comes from ${TOKEN_ENV}"


def check_services_args(cfg: Config, args: Any, where: str) -> None:
    instance_ports = {port_of(n.url) for n in cfg.new.instances}
    expected = {"host": ALL_INTERFACES, "database_url": cfg.database.url,
                "redis_url": cfg.redis.url, "key_prefix": cfg.redis.key_prefix,
                "session_ttl": cfg.redis.session_ttl_s, "jwks": cfg.tokens.jwks_file,
                "jwt_issuer": cfg.tokens.issuer}
    for key, want in expected.items():
        got = getattr(args, key)
        assert got == want, f"{where}: --{key.replace('_', '-')} {got}: deploy/config.yaml: {want}"
    assert args.port in instance_ports, \
        f"{where}: --port {args.port}: new.instances use {sorted(instance_ports)}"
    port = cfg.gateway.admin_listen.port
    assert args.jwks_url and args.jwks_url.endswith(f":{port}/.well-known/jwks.json"), \
        f"{where}: --jwks-url {args.jwks_url}: the gateway's admin listener is :{port}"
    host = urlparse(args.jwks_url).netloc
    admin = AdminHosts(cfg.gateway.admin_hosts, cfg.gateway.admin_listen.host)
    assert admin.refusal([host], http10=False) is None, \
        f"{where}: --jwks-url {args.jwks_url}: gateway.admin_hosts does not name {host}"


def check_init_db_args(cfg: Config, args: Any, where: str) -> None:
    assert args.database_url == cfg.database.url, \
        f"{where}: --database-url: differs from deploy/config.yaml database.url"


def check_keys_args(cfg: Config, args: Any, where: str) -> None:
    assert args.config == CONFIG_MOUNT and args.action == "generate", f"{where}: keys generate"


CHECKS = {"gateway": check_gateway_args, "legacy": check_legacy_args,
          "services": check_services_args, "init-db": check_init_db_args,
          "keys": check_keys_args}


def required_env(cfg: Config, component: str) -> set[str]:
    """Secret environment variables a component's code reads under deploy/config.yaml."""
    out: set[str] = set()
    uses_db = component in ("gateway", "legacy", "services", "init-db")
    if uses_db and make_url(cfg.database.url).password is None:
        out.add(PG_PASSWORD_ENV)
    if component == "gateway":
        out |= {s.env for _, s in config_secrets(cfg) if s.env}
    if component == "legacy":
        out.add(TOKEN_ENV)
    return out


def probe_port(cfg: Config, cmd: Command) -> int:
    """Where a component's probes go: the gateway's admin listener, else its one port."""
    return int(cfg.gateway.admin_listen.port if cmd.component == "gateway" else cmd.args.port)


# ------------------------------------------------------------------ Kubernetes
def pod_specs(o: Obj) -> Iterator[tuple[str, dict[str, Any]]]:
    if o.kind in ("Deployment", "StatefulSet", "Job"):
        yield "spec.template.spec", o.doc["spec"]["template"]["spec"]


def containers(objs: list[Obj]) -> Iterator[tuple[Obj, dict[str, Any], dict[str, Any], str]]:
    for o in objs:
        for key, pod in pod_specs(o):
            for c in pod["containers"]:
                yield o, pod, c, f"{key}.containers[{c['name']}]"


def k8s_argv(c: dict[str, Any]) -> list[str]:
    return [str(a) for a in (c.get("command") or image_entrypoint()) + c.get("args", [])]


def named_port(c: dict[str, Any], port: int | str, where: str) -> int:
    if isinstance(port, int):
        return port
    hits = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == port]
    assert hits, f"{where}: port {port!r}: the container declares no such port"
    return int(hits[0])


def mount_of(pod: dict[str, Any], c: dict[str, Any], directory: str,
             where: str) -> dict[str, Any]:
    """The pod volume mounted at ``directory`` in container ``c``."""
    mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == directory]
    assert mounts, f"{where}.volumeMounts: nothing mounted at {directory}"
    volumes = [v for v in pod.get("volumes", []) if v["name"] == mounts[0]["name"]]
    assert volumes, f"{where}.volumeMounts[{mounts[0]['name']}]: no such volume"
    return dict(volumes[0])


@pytest.fixture(scope="module")
def k8s_commands(objs: list[Obj]) -> list[tuple[Obj, dict[str, Any], dict[str, Any], str,
                                               Command]]:
    out = []
    for o, pod, c, key in containers(objs):
        out.append((o, pod, c, key, parse_command(k8s_argv(c), o.where(key + ".args"))))
    return out


def test_k8s_commands_are_real_and_agree_with_the_config(cfg: Config, k8s_commands: Any) -> None:
    seen: Counter[str] = Counter()
    for o, _pod, c, key, cmd in k8s_commands:
        CHECKS[cmd.component](cfg, cmd.args, o.where(key + ".args"))
        seen[cmd.component] += 1
        for ref in re.findall(r"\$\((\w+)\)", " ".join(k8s_argv(c))):
            assert any(e["name"] == ref for e in c.get("env", [])), \
                o.where(f"{key}.args: $({ref}) is not defined in env")
    assert set(seen) >= {"gateway", "legacy", "services", "init-db"}, \
        f"deploy/k8s: components found: {sorted(seen)}"


def test_k8s_ports_and_probes_match_the_code(cfg: Config, k8s_commands: Any) -> None:
    for o, _pod, c, key, cmd in k8s_commands:
        if cmd.component not in PROBES:
            continue
        ports = {p["name"]: int(p["containerPort"]) for p in c.get("ports", [])}
        wanted = ({"proxy": cfg.gateway.listen.port, "admin": cfg.gateway.admin_listen.port}
                  if cmd.component == "gateway" else {"http": cmd.args.port})
        assert ports == wanted, o.where(f"{key}.ports: {ports}, the process listens on {wanted}")
        ready, live, _app = PROBES[cmd.component]
        for probe, path in (("readinessProbe", ready), ("livenessProbe", live),
                            ("startupProbe", live)):
            get = (c.get(probe) or {}).get("httpGet")
            if probe == "startupProbe" and get is None:
                continue
            assert get, o.where(f"{key}.{probe}.httpGet: missing")
            at = named_port(c, get["port"], o.where(f"{key}.{probe}.httpGet"))
            assert (at, get["path"]) == (probe_port(cfg, cmd), path), o.where(
                f"{key}.{probe}.httpGet: {at}{get['path']}, expected {probe_port(cfg, cmd)}{path}")


def test_k8s_legacy_nodes_have_the_identities_and_addresses_in_the_config(
        cfg: Config, objs: list[Obj], k8s_commands: Any) -> None:
    legacy = [(o, c, key, cmd) for o, _p, c, key, cmd in k8s_commands if cmd.component == "legacy"]
    assert len(legacy) == 1, "deploy/k8s: expected one legacy workload"
    o, c, key, cmd = legacy[0]
    assert o.kind == "StatefulSet", o.where("kind: legacy nodes need per-pod identity")
    assert cmd.args.node_id == "$(POD_NAME)", o.where(f"{key}.args: --node-id $(POD_NAME)")
    pod_name = [e for e in c["env"] if e["name"] == "POD_NAME"]
    assert pod_name and pod_name[0].get("valueFrom", {}).get("fieldRef", {}).get(
        "fieldPath") == "metadata.name", o.where(f"{key}.env[POD_NAME]: from metadata.name")
    replicas = int(o.doc["spec"]["replicas"])
    pods = {f"{o.name}-{i}" for i in range(replicas)}
    ids = {n.id for n in cfg.legacy.nodes}
    assert pods == ids, \
        o.where(f"spec.replicas: pods {sorted(pods)} but deploy/config.yaml legacy.nodes "
                f"has {sorted(ids)}")
    labels = o.doc["spec"]["template"]["metadata"]["labels"]
    for node in cfg.legacy.nodes:
        svc = find(objs, "Service", host_of(node.url))
        selector = svc.doc["spec"]["selector"]
        assert selector.get("statefulset.kubernetes.io/pod-name") == node.id, \
            svc.where(f"spec.selector: must pick pod {node.id} alone")
        assert all(labels.get(k) == v for k, v in selector.items() if "pod-name" not in k), \
            svc.where("spec.selector: does not match the StatefulSet's pods")
        ports = svc.doc["spec"]["ports"]
        match = [p for p in ports if p["port"] == port_of(node.url)]
        assert match, svc.where(f"spec.ports: none on {port_of(node.url)} ({node.url})")
        target = named_port(c, match[0].get("targetPort", match[0]["port"]), svc.where("ports"))
        assert target == cmd.args.port, svc.where(f"spec.ports.targetPort: {target}")
    assert o.doc["spec"]["serviceName"] in {x.name for x in objs if x.kind == "Service"}, \
        o.where("spec.serviceName: no such Service")


def test_k8s_new_instances_are_services_in_front_of_the_deployment(
        cfg: Config, objs: list[Obj], k8s_commands: Any) -> None:
    workloads = [(o, c, cmd) for o, _p, c, _k, cmd in k8s_commands if cmd.component == "services"]
    assert len(workloads) == 1, "deploy/k8s: expected one services workload"
    o, c, cmd = workloads[0]
    assert o.kind == "Deployment" and int(o.doc["spec"]["replicas"]) >= 2, \
        o.where("spec.replicas: expected a Deployment with 2 or more")
    for inst in cfg.new.instances:
        svc = find(objs, "Service", host_of(inst.url))
        assert pod_selected(svc, o), svc.where("spec.selector: does not select the services pods")
        match = [p for p in svc.doc["spec"]["ports"] if p["port"] == port_of(inst.url)]
        assert match, svc.where(f"spec.ports: none on {port_of(inst.url)} ({inst.url})")
        target = named_port(c, match[0].get("targetPort", match[0]["port"]), svc.where("ports"))
        assert target == cmd.args.port, svc.where(f"spec.ports.targetPort: {target}")


def pod_selected(svc: Obj, workload: Obj) -> bool:
    labels = workload.doc["spec"]["template"]["metadata"]["labels"]
    selector = svc.doc["spec"].get("selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_k8s_every_service_selects_a_workload_and_a_real_port(objs: list[Obj]) -> None:
    workloads = [o for o in objs if o.kind in ("Deployment", "StatefulSet")]
    for svc in (o for o in objs if o.kind == "Service"):
        if svc.doc["spec"].get("type") == "ExternalName":
            assert PLACEHOLDER in svc.doc["spec"]["externalName"] or \
                "." in svc.doc["spec"]["externalName"], svc.where("spec.externalName")
            continue
        selector = dict(svc.doc["spec"]["selector"])
        selector.pop("statefulset.kubernetes.io/pod-name", None)
        hits = [w for w in workloads if all(
            w.doc["spec"]["template"]["metadata"]["labels"].get(k) == v
            for k, v in selector.items())]
        assert len(hits) == 1, svc.where(f"spec.selector: selects {len(hits)} workloads")
        c = hits[0].doc["spec"]["template"]["spec"]["containers"][0]
        for p in svc.doc["spec"]["ports"]:
            named_port(c, p.get("targetPort", p["port"]), svc.where(f"spec.ports[{p['name']}]"))


def test_k8s_gateway_services_expose_proxy_and_admin_separately(objs: list[Obj]) -> None:
    gateway = find(objs, "Deployment", "gateway")
    proxy = find(objs, "Service", "gateway")
    admin = find(objs, "Service", "gateway-admin")
    for svc, port in ((proxy, "proxy"), (admin, "admin")):
        assert pod_selected(svc, gateway), svc.where("spec.selector: not the gateway pods")
        targets = [p.get("targetPort") for p in svc.doc["spec"]["ports"]]
        assert targets == [port], svc.where(f"spec.ports: expected only targetPort {port}")
    assert admin.doc["spec"].get("type", "ClusterIP") == "ClusterIP", \
        admin.where("spec.type: the admin listener's reads are open; keep it internal")


def test_k8s_gateway_drains_before_it_stops(cfg: Config, objs: list[Obj]) -> None:
    gateway = find(objs, "Deployment", "gateway")
    pod = gateway.doc["spec"]["template"]["spec"]
    c = pod["containers"][0]
    key = "spec.template.spec.containers[gateway]"
    assert int(gateway.doc["spec"]["replicas"]) >= 2, gateway.where(
        f"spec.replicas {gateway.doc['spec']['replicas']}: at least 2 (the HPA's minimum)")
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    assert pre[:1] == ["sleep"], gateway.where(f"{key}.lifecycle.preStop: expected a sleep")
    grace = int(pod["terminationGracePeriodSeconds"])
    need = int(pre[1]) + cfg.gateway.timeouts.request_ms / 1000
    assert grace > need, gateway.where(
        f"spec.template.spec.terminationGracePeriodSeconds {grace}: preStop {pre[1]} s plus "
        f"a request's timeout ({cfg.gateway.timeouts.request_ms} ms) need more")
    rolling = gateway.doc["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0, gateway.where("spec.strategy.rollingUpdate")


def test_k8s_hpa_scales_the_gateway_deployment_on_cpu(objs: list[Obj], k8s_commands: Any) -> None:
    hpas = [o for o in objs if o.kind == "HorizontalPodAutoscaler"]
    assert len(hpas) == 1, "deploy/k8s: expected one HorizontalPodAutoscaler"
    hpa = hpas[0]
    ref = hpa.doc["spec"]["scaleTargetRef"]
    target = find(objs, ref["kind"], ref["name"])
    assert (ref["apiVersion"], ref["kind"]) == ("apps/v1", "Deployment"), \
        hpa.where("spec.scaleTargetRef")
    runs = {cmd.component for o, _p, _c, _k, cmd in k8s_commands if o is target}
    assert runs == {"gateway"}, hpa.where(f"spec.scaleTargetRef: {target.name} runs {runs}")
    metrics = hpa.doc["spec"]["metrics"]
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics), \
        hpa.where("spec.metrics: expected CPU")
    assert 2 <= hpa.doc["spec"]["minReplicas"] < hpa.doc["spec"]["maxReplicas"], \
        hpa.where(f"spec.minReplicas {hpa.doc['spec']['minReplicas']}, maxReplicas "
                  f"{hpa.doc['spec']['maxReplicas']}: expected 2 <= min < max")
    c = target.doc["spec"]["template"]["spec"]["containers"][0]
    assert c.get("resources", {}).get("requests", {}).get("cpu"), \
        target.where("spec.template.spec.containers[0].resources.requests.cpu: the HPA "
                     "measures utilization against it")


def test_k8s_workloads_are_hardened_and_sized(objs: list[Obj]) -> None:
    for o, _pod, c, key in containers(objs):
        requests = c.get("resources", {}).get("requests", {})
        assert requests.get("cpu") and requests.get("memory"), \
            o.where(f"{key}.resources.requests")
        assert c.get("resources", {}).get("limits", {}).get("memory"), \
            o.where(f"{key}.resources.limits.memory")
        ctx = c.get("securityContext", {})
        assert ctx.get("allowPrivilegeEscalation") is False, \
            o.where(f"{key}.securityContext.allowPrivilegeEscalation")
        assert ctx.get("readOnlyRootFilesystem") is True, \
            o.where(f"{key}.securityContext.readOnlyRootFilesystem")
        assert ctx.get("capabilities", {}).get("drop") == ["ALL"], \
            o.where(f"{key}.securityContext.capabilities.drop")
        image = str(c["image"])
        assert image.split(":")[0] == "strangler" and ":" in image, \
            o.where(f"{key}.image: {image}: expected strangler:TAG (kustomization.yaml sets it)")


def test_k8s_configmap_is_deploy_config_byte_for_byte(objs: list[Obj],
                                                      k8s_commands: Any) -> None:
    cm = find(objs, "ConfigMap", "strangler-config")
    key = PurePosixPath(CONFIG_MOUNT).name
    assert cm.doc["data"].get(key) == CONFIG_FILE.read_text(), cm.where(
        f"data.{key}: differs from deploy/config.yaml; regenerate it (see the comment in "
        "deploy/k8s/configmap.yaml)")
    for o, pod, c, k, cmd in k8s_commands:
        if cmd.component in ("gateway", "keys"):
            vol = mount_of(pod, c, str(PurePosixPath(CONFIG_MOUNT).parent), o.where(k))
            assert vol.get("configMap", {}).get("name") == cm.name, \
                o.where(f"{k}: {CONFIG_MOUNT} must come from ConfigMap/{cm.name}")


def test_k8s_key_files_are_mounted_from_the_secret_and_only_where_needed(
        cfg: Config, k8s_commands: Any) -> None:
    private, jwks = cfg.tokens.private_key_file, cfg.tokens.jwks_file
    template = secret_template()
    for o, pod, c, key, cmd in k8s_commands:
        wanted = {"gateway": private, "services": jwks}.get(cmd.component)
        if wanted is not None:
            vol = mount_of(pod, c, str(wanted.parent), o.where(key))
            secret = vol.get("secret", {})
            items = {i["key"]: i["path"] for i in secret.get("items", [])}
            assert list(items.values()) == [wanted.name], o.where(
                f"spec.template.spec.volumes[{vol['name']}].secret.items: expose only "
                f"{wanted.name} (deploy/config.yaml tokens)")
            assert (secret.get("secretName"), *items) in {
                (name, k) for name, keys in template.items() for k in keys}, \
                o.where(f"volumes[{vol['name']}]: no such Secret key in {rel(SECRETS_TEMPLATE)}")
        for v in pod.get("volumes", []):
            for item in v.get("secret", {}).get("items", []):
                assert item["path"] != private.name or cmd.component == "gateway", o.where(
                    f"spec.template.spec.volumes[{v['name']}]: the signing key reaches "
                    f"{cmd.component}")
    snapshot = cfg.flags.unleash.snapshot_file if cfg.flags.unleash else None
    for o, pod, c, key, cmd in k8s_commands:
        if cmd.component == "gateway" and snapshot is not None:
            vol = mount_of(pod, c, str(snapshot.parent), o.where(key))
            assert "emptyDir" in vol, o.where(
                f"{key}: {snapshot.parent} (flags.unleash.snapshot_file) must be writable")


def secret_template() -> dict[str, dict[str, str]]:
    out = {}
    for doc in yaml.safe_load_all(SECRETS_TEMPLATE.read_text()):
        assert doc["kind"] == "Secret"
        out[doc["metadata"]["name"]] = {k: str(v) for k, v in doc["stringData"].items()}
    return out


def test_k8s_secrets_are_provided_from_secrets_never_literally(cfg: Config,
                                                               k8s_commands: Any) -> None:
    template = secret_template()
    for o, _pod, c, key, cmd in k8s_commands:
        env = {e["name"]: e for e in c.get("env", [])}
        for name in sorted(required_env(cfg, cmd.component)):
            assert name in env, o.where(f"{key}.env: {name} missing ({cmd.component} reads it)")
        for name, e in env.items():
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if SECRET_LIKE.search(name) or name in required_env(cfg, cmd.component):
                assert ref and "value" not in e, \
                    o.where(f"{key}.env[{name}]: must come from a Secret (secretKeyRef)")
            if ref:
                assert ref["key"] in template.get(ref["name"], {}), o.where(
                    f"{key}.env[{name}]: Secret {ref['name']} key {ref['key']} is not in "
                    f"{rel(SECRETS_TEMPLATE)}")


def test_k8s_secret_template_holds_placeholders_only(cfg: Config) -> None:
    where = rel(SECRETS_TEMPLATE)
    for name, data in secret_template().items():
        for key, value in data.items():
            assert PLACEHOLDER in value, \
                f"{where}: Secret/{name} stringData.{key}: not a placeholder"
    unleash = cfg.flags.unleash
    assert unleash is not None
    token = secret_template()["strangler-secrets"]["UNLEASH_CLIENT_TOKEN"]
    assert token.startswith(f"{unleash.project}:{unleash.environment}."), \
        f"{where}: UNLEASH_CLIENT_TOKEN: a client token of {unleash.project}:{unleash.environment}"


def test_k8s_everything_in_one_namespace_and_in_the_kustomization(objs: list[Obj]) -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    ns = kust["namespace"]
    find(objs, "Namespace", ns)
    for o in objs:
        if o.kind != "Namespace":
            assert o.doc["metadata"].get("namespace") == ns, o.where(f"metadata.namespace: {ns}")
    listed = set(kust["resources"])
    files = {p.name for p in k8s_files()} - {"kustomization.yaml", SECRETS_TEMPLATE.name}
    assert listed == files, f"deploy/k8s/kustomization.yaml: resources: listed {sorted(listed)}, " \
                            f"files {sorted(files)} (never list {SECRETS_TEMPLATE.name})"
    assert [i["name"] for i in kust["images"]] == ["strangler"], \
        "deploy/k8s/kustomization.yaml: images"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_k8s_kustomize_builds_every_manifest(objs: list[Obj]) -> None:
    """``kubectl kustomize`` renders offline: what ``kubectl apply -k`` would send."""
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, f"kubectl kustomize deploy/k8s: {out.stderr.strip()}"
    built = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out.stdout) if d}
    files = {(o.kind, o.name) for o in objs if o.file != SECRETS_TEMPLATE}
    assert built == files, f"kubectl kustomize deploy/k8s: builds {sorted(built ^ files)} " \
                           "differently from the files"


def test_k8s_external_services_are_the_hosts_the_config_names(cfg: Config,
                                                              objs: list[Obj]) -> None:
    assert cfg.redis.url and cfg.flags.unleash
    for what, url in (("redis.url", cfg.redis.url),
                      ("database.url", cfg.database.url.replace("+asyncpg", "")),
                      ("flags.unleash.url", cfg.flags.unleash.url)):
        svc = find(objs, "Service", host_of(url))
        assert svc.doc["spec"].get("type") == "ExternalName", \
            svc.where(f"spec.type: deploy/config.yaml {what} is managed outside (ExternalName)")


# ------------------------------------------------------------------ compose
SUBST = re.compile(r"^\$\{(\w+):\?[^}]+\}$")


def compose_argv(svc: dict[str, Any]) -> list[str]:
    entry = svc.get("entrypoint") or image_entrypoint()
    return [str(a) for a in [*entry, *svc.get("command", [])]]


@pytest.fixture(scope="module")
def compose_commands(compose: dict[str, Any]) -> list[tuple[str, dict[str, Any], Command]]:
    out = []
    for name, svc in compose["services"].items():
        if "strangler" in str(svc.get("image", "")):
            out.append((name, svc, parse_command(compose_argv(svc),
                                                 f"{rel(COMPOSE_FILE)}: services.{name}.command")))
    return out


def cwhere(name: str, key: str) -> str:
    return f"{rel(COMPOSE_FILE)}: services.{name}.{key}"


def test_compose_runs_every_part_twice_with_real_commands(cfg: Config,
                                                          compose_commands: Any) -> None:
    seen: Counter[str] = Counter()
    for name, _svc, cmd in compose_commands:
        CHECKS[cmd.component](cfg, cmd.args, cwhere(name, "command"))
        seen[cmd.component] += 1
    for component in ("gateway", "legacy", "services"):
        assert seen[component] >= 2, f"{rel(COMPOSE_FILE)}: {component} runs {seen[component]}x"
    assert seen["init-db"] == 1 and seen["keys"] == 1, f"{rel(COMPOSE_FILE)}: one-shot jobs"


def test_compose_backends_answer_at_the_config_addresses(cfg: Config, compose: dict[str, Any],
                                                         compose_commands: Any) -> None:
    def names(name: str, svc: dict[str, Any]) -> set[str]:
        aliases = (svc.get("networks") or {}).get("default", {}) or {}
        return {name, *aliases.get("aliases", [])}

    legacy = {cmd.args.node_id: (name, svc, cmd) for name, svc, cmd in compose_commands
              if cmd.component == "legacy"}
    assert set(legacy) == {n.id for n in cfg.legacy.nodes}, cwhere("legacy-*", "command: " +
        f"--node-id {sorted(legacy)} but legacy.nodes has {[n.id for n in cfg.legacy.nodes]}")
    for node in cfg.legacy.nodes:
        name, svc, cmd = legacy[node.id]
        assert host_of(node.url) in names(name, svc), \
            cwhere(name, f"name/aliases: {node.url} of node {node.id} does not reach it")
        assert cmd.args.port == port_of(node.url), cwhere(name, f"command: --port vs {node.url}")
    services = [(name, svc, cmd) for name, svc, cmd in compose_commands
                if cmd.component == "services"]
    for inst in cfg.new.instances:
        answering = [n for n, svc, cmd in services if host_of(inst.url) in names(n, svc)
                     and cmd.args.port == port_of(inst.url)]
        assert len(answering) >= 2, cwhere("services-*", f"networks.default.aliases: "
                                           f"{inst.url} reaches {answering}")
    ids = [cmd.args.instance_id for _n, _s, cmd in services]
    assert len(set(ids)) == len(ids), cwhere("services-*", f"command: --instance-id {ids}")
    for what, url in (("redis.url", cfg.redis.url or ""),
                      ("database.url", cfg.database.url.replace("+asyncpg", "")),
                      ("flags.unleash.url", cfg.flags.unleash.url if cfg.flags.unleash else "")):
        assert host_of(url) in compose["services"], \
            f"{rel(COMPOSE_FILE)}: services: no {host_of(url)!r} for deploy/config.yaml {what}"
    db = make_url(cfg.database.url)
    pg_env = compose["services"][host_of(cfg.database.url)]["environment"]
    assert (pg_env["POSTGRES_USER"], pg_env["POSTGRES_DB"]) == (db.username, db.database), \
        cwhere("postgres", "environment: POSTGRES_USER/POSTGRES_DB vs database.url")


def test_compose_gateway_ports_mounts_and_volumes(cfg: Config, compose_commands: Any) -> None:
    assert cfg.flags.unleash
    for name, svc, cmd in compose_commands:
        volumes = {str(v).split(":")[1]: str(v).split(":")[0] for v in svc.get("volumes", [])}
        if cmd.component in ("gateway", "keys"):
            assert volumes.get(CONFIG_MOUNT) == "./config.yaml", \
                cwhere(name, f"volumes: ./config.yaml must be mounted at {CONFIG_MOUNT}")
        if cmd.component in ("gateway", "keys"):
            assert str(cfg.tokens.private_key_file.parent) in volumes, \
                cwhere(name, f"volumes: {cfg.tokens.private_key_file.parent} (the signing key)")
        if cmd.component in ("services", "keys"):
            assert str(cfg.tokens.jwks_file.parent) in volumes, \
                cwhere(name, f"volumes: {cfg.tokens.jwks_file.parent} (the JWKS)")
        if cmd.component in ("services", "legacy", "init-db"):
            assert str(cfg.tokens.private_key_file.parent) not in volumes, \
                cwhere(name, "volumes: the signing key reaches a backend")
        if cmd.component != "gateway":
            continue
        assert str(cfg.flags.unleash.snapshot_file.parent) in volumes, \
            cwhere(name, "volumes: flags.unleash.snapshot_file's directory must be writable")
        published = {}
        for p in svc.get("ports", []):
            *host, container = str(p).split(":")
            published[int(container)] = host
        assert cfg.gateway.listen.port in published, \
            cwhere(name, f"ports: gateway.listen.port {cfg.gateway.listen.port} not published")
        admin = published.get(cfg.gateway.admin_listen.port)
        assert admin and admin[0] == "127.0.0.1", cwhere(
            name, "ports: the admin listener must be published on the host's loopback only")


def test_compose_healthchecks_probe_the_real_endpoints(cfg: Config, compose: dict[str, Any],
                                                       compose_commands: Any) -> None:
    for name, svc, cmd in compose_commands:
        if cmd.component not in PROBES:
            continue
        path, port = PROBES[cmd.component][0], probe_port(cfg, cmd)
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        m = re.search(r"http://(127\.0\.0\.1|localhost):(\d+)(/[^'\"\s]*)", test)
        assert m, cwhere(name, "healthcheck.test: no http://127.0.0.1:PORT/PATH")
        assert (int(m.group(2)), m.group(3)) == (port, path), \
            cwhere(name, f"healthcheck.test: {m.group(2)}{m.group(3)}, expected {port}{path}")
    for name, svc in compose["services"].items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in compose["services"], cwhere(name, f"depends_on.{dep}: no such service")
            condition = cond.get("condition")
            target = compose["services"][dep]
            if condition == "service_healthy":
                assert "healthcheck" in target, cwhere(dep, "healthcheck: others wait for it")
            if condition == "service_completed_successfully":
                assert target.get("restart") == "no", cwhere(dep, "restart: a job must be 'no'")


def test_compose_secrets_come_from_the_environment(cfg: Config, compose: dict[str, Any],
                                                   compose_commands: Any) -> None:
    for name, svc, cmd in compose_commands:
        env = svc.get("environment") or {}
        for var in sorted(required_env(cfg, cmd.component)):
            assert var in env, cwhere(name, f"environment.{var}: missing ({cmd.component} "
                                      "reads it)")
    example = dotenv(DEPLOY / ".env.example")
    used = set()
    for name, svc in compose["services"].items():
        for var, value in (svc.get("environment") or {}).items():
            value = str(value)
            used |= set(re.findall(r"\$\{(\w+)", value))
            if SECRET_LIKE.search(var):
                assert SUBST.match(value), cwhere(
                    name, f"environment.{var}: must be ${{VAR:?message}}, never a literal")
    assert used == set(example), f"deploy/.env.example: lists {sorted(example)}, compose " \
                                 f"uses {sorted(used)}"
    unleash = cfg.flags.unleash
    assert unleash
    env = compose["services"][host_of(unleash.url)]["environment"]
    gw = next(svc for _n, svc, cmd in compose_commands if cmd.component == "gateway")
    assert env["INIT_CLIENT_API_TOKENS"] == gw["environment"][unleash.client_token.env or ""], \
        cwhere("unleash", "environment.INIT_CLIENT_API_TOKENS: not the gateways' client token")
    assert env["INIT_ADMIN_API_TOKENS"] == gw["environment"][unleash.admin_token.env or ""], \
        cwhere("unleash", "environment.INIT_ADMIN_API_TOKENS: not the gateways' admin token")
    scope = f"{unleash.project}:{unleash.environment}."
    assert example["UNLEASH_CLIENT_TOKEN"].startswith(scope), \
        "deploy/.env.example: UNLEASH_CLIENT_TOKEN: the project:environment of deploy/config.yaml"


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    from tests.support.unleash import VERSION

    for name, svc in compose["services"].items():
        image = str(svc.get("image", ""))
        if "strangler" in image:
            continue
        assert re.search(r":[\w.-]*\d", image) and not image.endswith(":latest"), \
            cwhere(name, f"image: {image}: pin a version")
    unleash = str(compose["services"]["unleash"]["image"])
    assert unleash == f"unleashorg/unleash-server:{VERSION}", \
        cwhere("unleash", f"image: the tests run against unleash-server {VERSION}")


def dotenv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out



# ------------------------------------------------------------------ no literal secrets
LOCAL_SECRETS = (DEPLOY / ".env", DEPLOY / "secrets", K8S / "secrets.yaml")
"""Where real secrets may sit on an operator's machine (deploy/.gitignore)."""


def test_only_placeholders_where_secrets_go() -> None:
    ignored = set((DEPLOY / ".gitignore").read_text().split())
    assert {".env", "secrets/", "k8s/secrets.yaml"} <= ignored, \
        "deploy/.gitignore: real secrets (.env, secrets/, k8s/secrets.yaml) must be ignored"
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and not any(path.is_relative_to(s) for s in LOCAL_SECRETS):
            assert "-----BEGIN" not in path.read_text(), f"{rel(path)}: contains a PEM block"
    for key, value in dotenv(DEPLOY / ".env.example").items():
        assert PLACEHOLDER in value, f"deploy/.env.example: {key}: not a placeholder"
