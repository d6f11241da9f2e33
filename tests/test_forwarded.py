"""The per-address limit counts the real client: X-Forwarded-For is believed only from TRUSTED_PROXIES, the
right-most untrusted hop is the client, and the shipped nginx overwrites the header instead of appending to the
client's. Checked on real app processes (the LLM is down, so /chat answers at once with its fallback) and through
Debian's nginx running deploy/nginx.conf.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from helpers.app_process import AppProcess
from helpers.proxy import Proxy, run_proxy
from launcher.services import free_port

pytestmark = pytest.mark.slow
# RATE_LIMIT_IP of the two apps. They share the session's Redis, where a count's key names the address and the
# limit, so different limits keep their counts for 127.0.0.1 apart.
DIRECT_LIMIT, PROXIED_LIMIT = 5, 4


def limited_app_env(limit: int, **extra: str) -> dict[str, str]:
    return {
        "LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # nothing listens: the fallback answers at once
        "RATE_LIMIT_IP": f"{limit}/minute",
        **extra,
    }


@pytest.fixture(scope="module")
def direct_app(start_app: Callable[..., AbstractContextManager[AppProcess]]) -> Iterator[AppProcess]:
    """TRUSTED_PROXIES unset, the default: the peer address is the client, whatever the headers say."""
    with start_app("xff-direct", "xff", limited_app_env(DIRECT_LIMIT)) as app:
        yield app


@pytest.fixture(scope="module")
def proxied_app(start_app: Callable[..., AbstractContextManager[AppProcess]]) -> Iterator[AppProcess]:
    """The app trusts the proxy on 127.0.0.1 (as compose.yaml trusts its nginx)."""
    with start_app("xff-proxied", "xff", limited_app_env(PROXIED_LIMIT, TRUSTED_PROXIES="127.0.0.1")) as app:
        yield app


@pytest.fixture(scope="module")
def proxy(proxied_app: AppProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    with run_proxy([proxied_app.url.removeprefix("http://")], tmp_path_factory.mktemp("nginx")) as running:
        yield running


def chat_statuses(url: str, forwarded_for: Callable[[int], str], count: int) -> list[int]:
    """`count` new conversations (session_id null each time), each claiming an address of its own."""
    statuses = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for n in range(count):
            response = client.post(
                "/chat",
                json={"message": "How do I reset my password?", "session_id": None},
                headers={"X-Forwarded-For": forwarded_for(n)},
            )
            statuses.append(response.status_code)
    return statuses


def test_without_trusted_proxies_a_client_written_forwarded_for_is_ignored(direct_app: AppProcess) -> None:
    statuses = chat_statuses(direct_app.url, lambda n: f"198.51.100.{n + 1}", DIRECT_LIMIT + 1)
    assert statuses == [200] * DIRECT_LIMIT + [429]


def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(proxied_app: AppProcess) -> None:
    """What a proxy that appends sends: the client's own (forged) list, then the address the proxy saw."""
    statuses = chat_statuses(proxied_app.url, lambda n: f"198.51.100.{n + 1}, 203.0.113.7", PROXIED_LIMIT + 1)
    assert statuses == [200] * PROXIED_LIMIT + [429]
    assert chat_statuses(proxied_app.url, lambda n: "203.0.113.8", count=1) == [200]  # another client: its own count


def test_through_the_shipped_nginx_forged_addresses_count_as_one_client(proxy: Proxy) -> None:
    statuses = chat_statuses(proxy.url, lambda n: f"192.0.2.{n + 1}", PROXIED_LIMIT + 1)
    assert statuses == [200] * PROXIED_LIMIT + [429]


@pytest.mark.parametrize("path", ["/metrics", "/ready", "/openapi.json", "/agent/playground/"])
def test_the_shipped_nginx_keeps_operator_routes_inside(proxy: Proxy, path: str) -> None:
    assert httpx.get(proxy.url + path, timeout=10).status_code == 404
    assert httpx.get(proxy.url + "/health", timeout=10).status_code == 200


def test_the_shipped_nginx_logs_no_query_strings(proxy: Proxy) -> None:
    httpx.get(proxy.url + "/api/search", params={"q": "alice@example.com card 4111 1111 1111 1111"}, timeout=30)
    log = Path(proxy.access_log).read_text()
    assert "/api/search" in log
    assert "alice" not in log and "4111" not in log
