"""`/health` (the process answers) and `/ready` (its parts answer): for load balancers and the launcher.

Redis and Chroma are required: without them nothing works, so `/ready` answers 503 naming them. LLM
endpoints are not: without them search, history and tickets still work and chat answers with its fallback,
so a down LLM makes the app `degraded` (200) with the endpoint named. A part the launcher is restarting
(launcher/supervisor.py) is `restarting`, with its restarts in a row and seconds down, and counts as down.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import services
from api.security import is_operator

router = APIRouter(tags=["operations"])
PROBE_TIMEOUT = 2.0


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process is serving requests."""
    return {"status": "ok"}


async def _timed(name: str, probe) -> dict:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), PROBE_TIMEOUT)
        status, detail = "up", None
    except Exception as error:
        status, detail = "down", f"{type(error).__name__}: {error}"[:300]
    result = {"name": name, "status": status, "ms": round((time.perf_counter() - started) * 1000, 1)}
    return result | ({"error": detail} if detail else {})


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness of Redis, Chroma and every LLM endpoint, checked in parallel (2 s timeout each)."""
    state = services(request)
    settings = state.settings

    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:

        async def get_ok(url: str) -> None:
            (await client.get(url)).raise_for_status()

        async def chroma() -> None:
            if settings.chroma_url:
                await get_ok(f"{settings.chroma_url.rstrip('/')}/api/v2/heartbeat")
            else:  # embedded folder: this process opens it
                from tools.store import get_collection

                await asyncio.to_thread(get_collection, settings)

        checks = [_timed("redis", state.redis.ping), _timed("chroma", chroma)]
        checks += [
            _timed(f"llm:{url}", lambda url=url: get_ok(f"{url.rstrip('/')}/models")) for url in settings.llm_base_url
        ]
        parts = await asyncio.gather(*checks)

    supervisor = getattr(request.app.state, "supervisor", None)  # set by the launcher, which restarts its parts
    restarting = supervisor.restarting() if supervisor is not None else {}
    for part in parts:
        if part["name"] in restarting:
            part |= {"status": "restarting", "restarting": restarting[part["name"]]}
    down = [part["name"] for part in parts if part["status"] != "up"]
    required_down = [name for name in down if not name.startswith("llm:")]
    status = "down" if required_down else "degraded" if down else "ready"
    body = {"status": status, "parts": parts, "degraded": down}
    if not await is_operator(request):  # internal URLs and error texts are for operators (api/security.py)
        body = {"status": status}
    return JSONResponse(body, status_code=503 if required_down else 200)
