"""A real Redis primary (AOF on), one replica and one Sentinel on free ports, for failover drills
(tests/test_sentinel.py, bench/failover_loss.py). Debian's `redis-server` and `redis-sentinel` (.ci/run installs them).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from launcher.services import free_port

SERVICE = "mymaster"


@dataclass
class SentinelTrio:
    primary_port: int
    replica_port: int
    sentinel_port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def master_port(self) -> int | None:
        """The primary's port as the sentinel reports it."""
        client = redis.Redis(port=self.sentinel_port, socket_timeout=1)
        try:
            address = client.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
            return int(address[1]) if address else None
        except redis.RedisError:
            return None
        finally:
            client.close()

    def kill_primary(self) -> None:
        """SIGKILL, as a crashed machine: nothing more is shipped to the replica."""
        self.processes["primary"].kill()
        self.processes["primary"].wait(10)

    def wait_promoted(self, timeout: float = 30.0) -> float:
        """Seconds until the sentinel names the replica as primary and the replica accepts writes."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.master_port() == self.replica_port:
                client = redis.Redis(port=self.replica_port, socket_timeout=1)
                try:
                    if client.info("replication")["role"] == "master":
                        return time.monotonic() - started
                finally:
                    client.close()
            time.sleep(0.05)
        raise TimeoutError(f"replica on {self.replica_port} not promoted within {timeout:.0f} s")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)


def _ping(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _wait(check, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready within {timeout:.0f} s")


def _server(work: Path, name: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    args = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--dir", str(folder), "--appendonly", "yes", "--save", "", *extra]
    return subprocess.Popen(args, stdout=(folder / "log").open("wb"), stderr=subprocess.STDOUT)


def start_trio(work: Path, down_after_ms: int = 1000, link: Callable[[int], int] | None = None) -> SentinelTrio:
    """Primary + replica (replicaof) + one sentinel (quorum 1), each in its own folder under `work`. `link`, given
    the primary's port, returns the port the replica should replicate from (a relay that can cut the link)."""
    trio = SentinelTrio(free_port(), free_port(), free_port())
    try:
        trio.processes["primary"] = _server(work, "primary", trio.primary_port)
        _wait(lambda: _ping(trio.primary_port), "primary")
        source = link(trio.primary_port) if link else trio.primary_port
        replicaof = ("--replicaof", "127.0.0.1", str(source))
        trio.processes["replica"] = _server(work, "replica", trio.replica_port, *replicaof)

        def linked() -> bool:
            client = redis.Redis(port=trio.replica_port, socket_timeout=0.5)
            try:
                return client.info("replication").get("master_link_status") == "up"
            except redis.RedisError:
                return False
            finally:
                client.close()

        _wait(linked, "replica link")
        folder = work / "sentinel"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "sentinel.conf"  # the sentinel rewrites it with what it learns
        config.write_text(
            f"port {trio.sentinel_port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {trio.primary_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} 3000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        binary = shutil.which("redis-sentinel") or "redis-sentinel"
        trio.processes["sentinel"] = subprocess.Popen(
            [binary, str(config)], stdout=(folder / "log").open("wb"), stderr=subprocess.STDOUT
        )

        def sees_replica() -> bool:
            client = redis.Redis(port=trio.sentinel_port, socket_timeout=0.5)
            try:
                return bool(client.execute_command("SENTINEL", "replicas", SERVICE))
            except redis.RedisError:
                return False
            finally:
                client.close()

        _wait(sees_replica, "sentinel (knowing the replica)")  # else it could not promote it
    except BaseException:
        trio.stop()
        raise
    return trio
