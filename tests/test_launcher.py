"""The one-command launcher and the help pages it links sources to."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.help import router as help_router

ROOT = Path(__file__).resolve().parents[1]


def test_a_taken_port_stops_the_launcher_with_a_message_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PORT": str(port), "DATA_DIR": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "-m", "launcher"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert "PORT" in result.stderr


def test_help_pages_render_the_docs_with_the_anchors_citations_use() -> None:
    app = FastAPI()
    app.include_router(help_router)
    client = TestClient(app)
    page = client.get("/help/configuration.md")
    assert page.status_code == 200
    assert 'id="conversations"' in page.text
    assert client.get("/help/").status_code == 200
    assert client.get("/help/../pyproject.toml").status_code == 404
    assert client.get("/help/nope.md").status_code == 404
