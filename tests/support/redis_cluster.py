"""Real Redis topologies on loopback: a 3-master cluster, a sentinel set-up.

Both run as ``redis-server`` children (``Proc``) on free ports, with no
persistence, under the test's temporary directory. ``start`` returns only
once the topology is usable: the cluster reports ``cluster_state:ok`` on every
node, the sentinels agree on the master and know the replica and each other.
Every wait has a deadline; a topology that does not form fails the test with
the servers' logs.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from functools import partial
from pathlib import Path
from typing import Any, cast

import redis

from testkit.net import free_port, port_open, wait_until
from testkit.procs import Proc


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not on PATH; make prereqs installs redis-server")
    return found


def _ping(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)


def _info(port: int, section: str) -> dict[str, object]:
    client = _ping(port)
    try:
        return dict(client.info(section))
    finally:
        client.close()


def _redis_proc(name: str, workdir: Path, port: int, *extra: str) -> Proc:
    data = workdir / name
    data.mkdir(parents=True, exist_ok=True)
    argv = [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(data), *extra]
    return Proc(name, argv, workdir)


class LocalCluster:
    """``masters`` cluster nodes, no replicas, every slot assigned."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.dir = workdir
        self.ports = [free_port() for _ in range(masters)]
        # The bus port defaults to port + 10000, which could land in the kernel's
        # ephemeral range: pick it like any other port.
        self.procs = [
            _redis_proc(f"cluster-{port}", workdir, port, "--cluster-enabled", "yes",
                        "--cluster-config-file", f"nodes-{port}.conf",
                        "--cluster-port", str(free_port()), "--cluster-node-timeout", "2000")
            for port in self.ports
        ]

    @property
    def nodes(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.ports]

    def start(self, timeout: float = 20.0) -> LocalCluster:
        for proc in self.procs:
            proc.start()
        for port in self.ports:
            wait_until(partial(port_open, port), timeout=timeout, what=f"cluster node {port}")
        made = subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *self.nodes,
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=timeout, check=False)
        if made.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{made.stdout}{made.stderr}")
        for port in self.ports:
            wait_until(partial(_cluster_ok, port), timeout=timeout,
                       what=f"cluster_state:ok on {port}")
        return self

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()

    def logs(self) -> str:
        return "\n".join(f"----- {p.name}\n{p.tail(20)}" for p in self.procs)


def _cluster_ok(port: int) -> bool:
    client = _ping(port)
    try:
        raw = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    finally:
        client.close()
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return fields.get("cluster_state", "").strip() == "ok"


class LocalSentinels:
    """One master, one replica, ``sentinels`` sentinels (quorum 2) watching ``name``.

    Sentinels declare the master down after ``down_after_ms`` without an answer;
    ``kill_master`` is a crash (SIGKILL), after which they elect the replica.
    A short ``failover_timeout_ms``: when the sentinels' first leader election
    splits its votes, the next try waits twice this (Redis's default of three
    minutes would outlast any test; 10 s once cost a run 22 s).
    """

    def __init__(self, workdir: Path, name: str = "strangler", sentinels: int = 3,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 3000) -> None:
        self.dir = workdir
        self.name = name
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        # No 5 s wait before the first full sync: the replica is in step at once.
        self.master = _redis_proc("redis-master", workdir, self.master_port,
                                  "--repl-diskless-sync-delay", "0")
        self.replica = _redis_proc("redis-replica", workdir, self.replica_port,
                                   "--replicaof", "127.0.0.1", str(self.master_port))
        self.sentinels = []
        for port in self.sentinel_ports:
            conf = workdir / f"sentinel-{port}.conf"  # sentinels rewrite their config
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                f"sentinel monitor {name} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
                f"sentinel failover-timeout {name} {failover_timeout_ms}\n"
                f"sentinel parallel-syncs {name} 1\n")
            self.sentinels.append(Proc(f"sentinel-{port}", [_binary("redis-server"), str(conf),
                                                            "--sentinel"], workdir))

    @property
    def nodes(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.sentinel_ports]

    @property
    def spec(self) -> str:
        """``NAME@host:port,...`` as ``new_services serve --redis-sentinel`` takes it."""
        return f"{self.name}@{','.join(self.nodes)}"

    def start(self, timeout: float = 20.0) -> LocalSentinels:
        self.master.start()
        self.replica.start()
        for port in (self.master_port, self.replica_port):
            wait_until(partial(port_open, port), timeout=timeout, what=f"redis {port}")
        wait_until(lambda: _info(self.replica_port, "replication").get(
            "master_link_status") == "up", timeout=timeout, what="replica in sync")
        for proc in self.sentinels:
            proc.start()
        wait_until(self._agreed, timeout=timeout, what="sentinels to agree")
        return self

    def _agreed(self) -> bool:
        """Every sentinel knows the master, the replica and the other sentinels."""
        for port in self.sentinel_ports:
            client = _ping(port)
            try:
                state = cast(dict[str, Any], client.sentinel_master(self.name))
            finally:
                client.close()
            if (state["num-slaves"] < 1 or state["num-other-sentinels"] < len(self.sentinels) - 1
                    or state["port"] != self.master_port):
                return False
        return True

    def master_addr(self, sentinel_port: int) -> tuple[str, int] | None:
        client = _ping(sentinel_port)
        try:
            addr = cast(tuple[bytes | str, int] | None,
                        client.sentinel_get_master_addr_by_name(self.name))
        finally:
            client.close()
        if not addr:
            return None
        host = addr[0].decode() if isinstance(addr[0], bytes) else str(addr[0])
        return host, int(addr[1])

    def kill_master(self) -> float:
        """Crash the master; returns the monotonic time of the kill."""
        self.master.kill()
        return time.monotonic()

    def wait_failover(self, timeout: float = 30.0) -> float:
        """Wait until every sentinel names the former replica as master; returns the time."""
        promoted = ("127.0.0.1", self.replica_port)

        def done() -> bool:
            if not all(self.master_addr(p) == promoted for p in self.sentinel_ports):
                return False
            return _info(self.replica_port, "replication").get("role") == "master"

        wait_until(done, timeout=timeout, interval=0.05, what="sentinel failover")
        return time.monotonic()

    def stop(self) -> None:
        for proc in [*self.sentinels, self.replica, self.master]:
            proc.kill()

    def logs(self) -> str:
        return "\n".join(f"----- {p.name}\n{p.tail(20)}"
                         for p in [self.master, self.replica, *self.sentinels])
