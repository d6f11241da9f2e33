"""The one-command launcher and the help pages it links sources to."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.help import router as help_router
from launcher.services import free_port, port_in_use, start_llm
from settings import Settings

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


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "LOCAL_MODEL",
            "qwen-coder",
            "LOCAL_MODEL='qwen-coder' is unknown: use one of qwen2.5-coder-1.5b, smollm2 or a",
        ),
        (
            "LOCAL_MODEL",
            "/nowhere/model.gguf",
            "LOCAL_MODEL=/nowhere/model.gguf: no such file; give a GGUF file or one",
        ),
        ("LOCAL_MODEL_PATH", "/nowhere/m.gguf", "LOCAL_MODEL_PATH=/nowhere/m.gguf: no such file; give a GGUF file or"),
    ],
)
def test_a_bad_local_model_stops_the_launcher_before_anything_starts(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    env = {**os.environ, variable: value, "PORT": str(free_port()), "DATA_DIR": str(tmp_path)}
    env.pop("LLM_BASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "launcher"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "launcher:" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert list(tmp_path.iterdir()) == []  # no Redis, no LLM server, no Chroma: not even a log folder


def test_the_llm_server_keeps_its_own_port_when_the_app_port_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama_cpp.server prefers HOST/PORT from the environment over --host/--port; `PORT=9000 ./run` must still
    put the LLM server on LOCAL_LLM_PORT and leave PORT to the app."""
    app_port, llm_port = free_port(), free_port()
    monkeypatch.setenv("PORT", str(app_port))
    monkeypatch.setenv("HOST", "127.0.0.2")
    llm = start_llm(Settings(_env_file=None).gguf_path, llm_port, tmp_path)  # type: ignore[call-arg]
    try:
        assert llm.url == f"http://127.0.0.1:{llm_port}/v1"
        assert not port_in_use(app_port)
    finally:
        llm.stop()


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
