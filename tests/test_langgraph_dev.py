"""`langgraph dev` serves the agent offline (what LangGraph Studio connects to); driven with langgraph_sdk."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from launcher.services import Service, free_port, wait_ready
from settings import Settings

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture
def langgraph_dev(settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
        "REDIS_URL": settings.redis_url or "",
        "CHROMA_URL": settings.chroma_url or "",
        "LLM_BASE_URL": settings.llm_base_url[0],
        "LLM_MAX_TOKENS": "32",
        "KB_COLLECTION": settings.kb_collection,
    }
    command = [
        str(Path(sys.executable).with_name("langgraph")),
        "dev",
        "--no-browser",
        "--no-reload",
        "--port",
        str(port),
    ]
    log_path = tmp_path / "langgraph-dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Service("langgraph dev", f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_ready(server, lambda: httpx.get(f"{server.url}/ok", timeout=2).status_code == 200, 120)
        yield server.url
    finally:
        server.stop(20)


async def test_langgraph_dev_runs_a_thread_of_the_support_agent(langgraph_dev: str, llm_service: Service) -> None:
    client = get_client(url=langgraph_dev)
    assistants = await client.assistants.search(graph_id="support_agent")
    assert assistants
    thread = await client.threads.create()
    result = await client.runs.wait(
        thread["thread_id"], "support_agent", input={"messages": [{"role": "user", "content": "I need a human"}]}
    )
    assert result["messages"][0]["content"] == "I need a human"
    assert result["ticket_id"]
    assert result["ticket_id"] in result["messages"][-1]["content"]
