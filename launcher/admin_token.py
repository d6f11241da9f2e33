"""The console on the one-command default: when ADMIN_TOKEN is not set, `./run` makes one and prints a link.

The token is kept in `DATA_DIR/admin-token` (owner-only), so the link printed last time keeps working after a
restart. The link carries it in the URL fragment (`/console#token=…`): browsers never send a fragment to the
server, so it is in no access log; the console moves it into the tab's sessionStorage and drops it from the
address bar. A token set in the environment or `.env` is never written or printed. The Docker image and
compose file do not run the launcher: there ADMIN_TOKEN must be set, or the lead API answers 503.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from settings import Settings

TOKEN_FILE = "admin-token"
MIN_LENGTH = 32


def token_file(settings: Settings) -> Path:
    return settings.data_dir / TOKEN_FILE


def ensure_admin_token(settings: Settings) -> str | None:
    """Export a generated ADMIN_TOKEN for the app unless one is set; the generated token (to print), else None."""
    if settings.admin_token:
        return None
    path = token_file(settings)
    token = path.read_text().strip() if path.is_file() else ""
    if len(token) < MIN_LENGTH:  # missing, empty or cut short: a new one (the old link stops working)
        token = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(token + "\n")
    path.chmod(0o600)
    os.environ["ADMIN_TOKEN"] = token
    return token


def console_link(settings: Settings, token: str) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}/console#token={token}"
