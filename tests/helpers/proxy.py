"""Debian's nginx with the shipped deploy/nginx.conf in front of app processes: launcher/proxy.py, shared with
bench/ (which imports nothing from tests/), so there is one copy."""

from launcher.proxy import SHIPPED, Proxy, proxy_config, run_proxy

__all__ = ["SHIPPED", "Proxy", "proxy_config", "run_proxy"]
