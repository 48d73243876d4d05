"""The redis section (url | sentinel | cluster) and the clients built from it; nothing connects."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from gateway.session.redis_client import describe, make_redis, secret_value
from gateway.settings import ConfigError, RedisSection, Secret, parse
from strangler import runtime
from strangler.cli import _redis_args
from strangler_sdk.redis_client import (
    PASSWORD_ENV,
    SENTINEL_PASSWORD_ENV,
    parse_nodes,
    parse_sentinel,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())

SENTINEL = {"master_name": "shop", "nodes": ["10.0.0.1:26379", "10.0.0.2:26379"],
            "password": {"env": "T_REDIS_PW"}, "sentinel_password": {"env": "T_SENTINEL_PW"}}
CLUSTER = {"nodes": ["10.0.0.1:7000", "[::1]:7001"], "password": {"env": "T_REDIS_PW"}}


def with_redis(**redis: Any) -> dict[str, Any]:
    data = copy.deepcopy(DEMO)
    data["redis"] = {"key_prefix": "strangler", **redis}
    return data


def refused(**redis: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse(with_redis(**redis), "config.yaml")
    return str(info.value)


def test_one_topology_at_most() -> None:
    assert "give one of url, sentinel, cluster (found url, sentinel)" in refused(
        url="redis://127.0.0.1:6379/0", sentinel=SENTINEL)
    assert not parse(with_redis(), "config.yaml").redis.configured
    for redis in ({"url": "redis://h:6379/0"}, {"sentinel": SENTINEL}, {"cluster": CLUSTER}):
        assert parse(with_redis(**redis), "config.yaml").redis.configured


@pytest.mark.parametrize("section, where", [
    ({"sentinel": {**SENTINEL, "nodes": ["10.0.0.1"]}},
     "redis.sentinel.nodes[0]: '10.0.0.1': expected host:port"),
    ({"sentinel": {**SENTINEL, "nodes": []}}, "redis.sentinel.nodes: give at least one"),
    ({"sentinel": {**SENTINEL, "master_name": "my master"}}, "redis.sentinel.master_name"),
    ({"sentinel": {**SENTINEL, "password": "inline"}}, "redis.sentinel.password"),
    ({"cluster": {"nodes": ["10.0.0.1:70000"]}}, "redis.cluster.nodes[0]: '10.0.0.1:70000'"),
    ({"cluster": {"nodes": ["h:1"], "replicas": 1}}, "redis.cluster.replicas"),
])
def test_a_bad_sentinel_or_cluster_names_the_key(section: dict[str, Any], where: str) -> None:
    message = refused(**section)
    assert where in message and len(message.splitlines()) == 2, message  # one problem


def test_each_topology_gets_its_client_without_connecting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_REDIS_PW", "data-secret")
    monkeypatch.setenv("T_SENTINEL_PW", "sentinel-secret")
    url = make_redis(RedisSection(url="redis://:pw@127.0.0.1:6379/3"))
    assert type(url) is Redis
    sentinel = make_redis(RedisSection.model_validate({"sentinel": SENTINEL}))
    pool = sentinel.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "shop"
    assert pool.connection_kwargs["password"] == "data-secret"
    assert [s.connection_pool.connection_kwargs["password"]
            for s in pool.sentinel_manager.sentinels] == ["sentinel-secret"] * 2
    cluster = make_redis(RedisSection.model_validate({"cluster": CLUSTER}), timeout_s=2)
    assert isinstance(cluster, RedisCluster)
    assert [(n.host, n.port) for n in cluster.nodes_manager.startup_nodes.values()] == [
        ("10.0.0.1", 7000), ("::1", 7001)]


def test_a_named_secret_that_is_missing_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("T_REDIS_PW", raising=False)
    with pytest.raises(ConfigError, match=r"redis.cluster.password: no secret found in "
                                          r"\$T_REDIS_PW$"):
        make_redis(RedisSection.model_validate({"cluster": CLUSTER}))
    with pytest.raises(ConfigError, match=r"x: no secret found in \$T_REDIS_PW or .*nope$"):
        secret_value(Secret(env="T_REDIS_PW", file=tmp_path / "nope"), "x")
    assert secret_value(None, "x") is None
    (tmp_path / "pw").write_text("from-file\n")
    assert secret_value(Secret(file=tmp_path / "pw"), "x") == "from-file"


def test_describe_never_shows_a_password() -> None:
    assert describe(RedisSection(url="redis://user:pw@h:6379/0")) == "redis://h:6379/0"
    assert describe(RedisSection.model_validate({"sentinel": SENTINEL})) == \
        "sentinel shop@10.0.0.1:26379,10.0.0.2:26379"
    assert "pw" not in describe(RedisSection.model_validate({"cluster": CLUSTER}))


def test_redis_url_on_the_command_line_replaces_the_configured_topology() -> None:
    configured = RedisSection.model_validate({"sentinel": SENTINEL})
    assert runtime.redis_section(configured) is configured
    given = runtime.redis_section(configured, "redis://127.0.0.1:6390/0")
    assert given is not None and given.url == "redis://127.0.0.1:6390/0"
    assert given.sentinel is None and given.configured


def test_services_get_the_topology_as_options_and_passwords_in_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_REDIS_PW", "data-secret")
    monkeypatch.setenv("T_SENTINEL_PW", "sentinel-secret")
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv(SENTINEL_PASSWORD_ENV, raising=False)
    args = _redis_args(RedisSection.model_validate({"sentinel": SENTINEL}))
    assert args == ["--redis-sentinel", "shop@10.0.0.1:26379,10.0.0.2:26379"]
    assert "secret" not in " ".join(args)
    spec = parse_sentinel(args[1])
    assert spec.master_name == "shop" and spec.nodes == (("10.0.0.1", 26379),
                                                         ("10.0.0.2", 26379))
    assert os.environ[PASSWORD_ENV] == "data-secret"
    assert os.environ[SENTINEL_PASSWORD_ENV] == "sentinel-secret"
    args = _redis_args(RedisSection.model_validate({"cluster": CLUSTER}))
    assert args == ["--redis-cluster", "10.0.0.1:7000,[::1]:7001"]
    assert parse_nodes(args[1]) == (("10.0.0.1", 7000), ("::1", 7001))


@pytest.mark.parametrize("spec", ["nohost", "h:0", "h:x", "h:1,:2"])
def test_services_refuse_a_bad_node_list(spec: str) -> None:
    with pytest.raises(ValueError, match="expected host:port"):
        parse_nodes(spec)
    with pytest.raises(ValueError, match="MASTER_NAME@"):
        parse_sentinel(spec)
