"""Several real app processes behind Debian's nginx running the shipped deploy/nginx.conf (launcher/proxy.py),
all on one Redis server and one Chroma server, as compose.yaml runs its replicas.

    with run_cluster(work, env, replicas=3) as cluster:
        cluster.proxy.url            # what a customer talks to (least_conn over the replicas)
        cluster.replicas[0].url      # one replica directly, to place a request on it
        cluster.served("/chat")      # per replica: how many /chat requests it answered

Which replica served what is read from each replica's own /metrics (`http_requests_total` by route,
`chat_streams_in_progress`), asked directly on the replica's port as Prometheus scrapes it — the app needs no
header of its own for it, and the proxy keeps /metrics inside. The replicas start in parallel (each loads the
embedding model), so a cluster is up in about the time of one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from helpers.app_process import AppProcess, run_app
from helpers.proxy import Proxy, run_proxy

ADMIN_TOKEN = "cluster-admin-token"


@dataclass
class Cluster:
    proxy: Proxy
    replicas: list[AppProcess]

    def alive(self) -> list[AppProcess]:
        return [app for app in self.replicas if app.process.poll() is None]

    def metric(self, app: AppProcess, name: str, labels: str = "") -> float:
        """One series of a replica's /metrics (0 when absent); `labels` a regex over its label set."""
        text = httpx.get(app.url + "/metrics", headers=admin(), timeout=10).text
        total = 0.0
        for match in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, flags=re.MULTILINE):
            if re.search(labels, match.group(1) or ""):
                total += float(match.group(2))
        return total

    def served(self, route: str) -> list[int]:
        """Per live replica (in order): requests to `route` it answered, whatever the status."""
        pattern = f'route="{re.escape(route)}"'
        return [int(self.metric(app, "http_requests_total", pattern)) for app in self.alive()]

    def streaming(self) -> list[AppProcess]:
        """The live replicas streaming an answer right now."""
        return [app for app in self.alive() if self.metric(app, "chat_streams_in_progress") > 0]


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@contextmanager
def run_cluster(work: Path, env: dict[str, str], replicas: int = 3) -> Iterator[Cluster]:
    """`replicas` app processes with the same `env` (REDIS_URL, CHROMA_URL, KB_COLLECTION, LLM_BASE_URL …), each on
    a port of its own, trusting the proxy on 127.0.0.1 as compose.yaml trusts its nginx; nginx in front."""
    full_env = {"ADMIN_TOKEN": ADMIN_TOKEN, "TRUSTED_PROXIES": "127.0.0.1", **env}
    with ExitStack() as stack:
        with ThreadPoolExecutor(replicas) as pool:
            starts = [
                pool.submit(stack.enter_context, run_app(work / f"replica-{n}", full_env)) for n in range(replicas)
            ]
            apps = [start.result() for start in starts]
        proxy = stack.enter_context(run_proxy([app.url.removeprefix("http://") for app in apps], work / "nginx"))
        yield Cluster(proxy, apps)
