"""(g) A broken config.yaml stops the gateway before it listens, naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.net import free_port, port_open
from tests.support.procs import ROOT
from tests.support.stack import Stack


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "strangler", "--config", str(config), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("break_it", "named"),
    [
        (lambda c: c["routes"][2].update(stage="sideways"), "routes[2].stage"),
        (lambda c: c["routes"][1].update(percent=150), "routes[1].percent"),
        (lambda c: c["gateway"]["listen"].update(port="eighty"), "gateway.listen.port"),
        (lambda c: c["routes"][0].update(fallbak={}), "routes[0].fallbak: unknown key"),
        (lambda c: c["legacy"].update(nodes=[]), "legacy.nodes"),
        (lambda c: c["routes"][3].update(breaker={"failures": 0}), "routes[3].breaker.failures"),
    ],
)
def test_gateway_refuses_a_broken_config_and_names_the_key(tmp_path: Path, redis_url: str,
                                                          break_it, named: str) -> None:
    stack = Stack(tmp_path / "s", redis_url)
    config = stack.config()
    port = free_port()
    config["gateway"]["listen"]["port"] = port
    break_it(config)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(config))

    gateway = _run(path, "gateway")
    assert gateway.returncode == 2
    assert named in gateway.stderr, gateway.stderr
    assert not port_open(port), "a refused config must not leave a listener behind"

    check = _run(path, "check-config")
    assert check.returncode == 2 and named in check.stderr


def test_check_config_accepts_the_demo_config() -> None:
    result = _run(ROOT / "config.yaml", "check-config")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert f"{ROOT / 'stack.yaml'}: OK (shop; setup: init-db; databases: shop)" in result.stdout


def test_yaml_syntax_errors_are_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("routes: [\n  - name: cart\n   paths: oops\n")
    result = _run(path, "check-config")
    assert result.returncode == 2
    assert "not valid YAML" in result.stderr and "Traceback" not in result.stderr
