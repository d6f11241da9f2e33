"""Debian's nginx with the shipped deploy/nginx.conf in front of app processes on this machine (tests and bench/).

Only what ties the file to Docker changes: the upstream servers (`app:8000` → the given addresses), the listen
port, and the log and pid paths (into the caller's folder). Everything else — headers, buffering, the routes kept
internal, the log format — is the file as shipped. A benchmark with more concurrent streams than nginx's default
512 connections per worker may raise `worker_connections` (each stream holds two: client and upstream).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from launcher.services import free_port

SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "nginx.conf"


@dataclass
class Proxy:
    url: str
    access_log: Path
    pid: int  # nginx's master process (its worker is a child): what a benchmark reads the CPU time of


def proxy_config(upstreams: list[str], port: int, work: Path, worker_connections: int | None = None) -> str:
    conf = SHIPPED.read_text()
    servers = "\n".join(f"        server {address};" for address in upstreams)
    conf, replaced = re.subn(r"^\s*server app:8000;.*$", servers, conf, flags=re.MULTILINE)
    assert replaced == 1, "deploy/nginx.conf no longer names its upstream `server app:8000;`"
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("/var/log/nginx/access.log", str(work / "access.log"))
    events = f"events {{ worker_connections {worker_connections}; }}" if worker_connections else "events {}"
    return conf.replace("events {}", f"pid {work / 'nginx.pid'};\nerror_log {work / 'error.log'};\n{events}", 1)


@contextmanager
def run_proxy(upstreams: list[str], work: Path, worker_connections: int | None = None) -> Iterator[Proxy]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise RuntimeError("nginx is not installed: .ci/run installs Debian's nginx (apt-get install nginx)")
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(proxy_config(upstreams, port, work, worker_connections))
    process = subprocess.Popen(
        [nginx, "-p", str(work), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(work / "stderr.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {(work / 'stderr.log').read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield Proxy(url=url, access_log=work / "access.log", pid=process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)
