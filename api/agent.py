"""The agent through LangServe at `/agent` (invoke, batch, stream, stream_events, playground).

LangServe drops `configurable` for LangGraph 1.x graphs, so the conversation is named by the `X-Session-Id`
header, carried into the config by `per_req_config_modifier`. Only server-issued, live session ids are accepted:
get one from `POST /api/sessions` (or from `/chat`'s `session` event).

    remote = RemoteRunnable("http://127.0.0.1:8000/agent/", headers={"X-Session-Id": session_id})
    remote.invoke({"messages": [{"role": "user", "content": "How do I reset my password?"}]})
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from langserve import add_routes

from api import sessions
from api.deps import services

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


@router.post("", status_code=201)
async def new_session(request: Request) -> dict[str, str]:
    """A fresh conversation id, for clients of `/agent` (the chat page gets one from `/chat`)."""
    state = services(request)
    return {"session_id": await sessions.issue(state.redis, state.settings.session_ttl_seconds)}


MESSAGE_TYPES = {"human", "ai", "system", "HumanMessage", "AIMessage", "SystemMessage"}


def _check_messages(value: Any) -> None:
    """LangServe would answer a 500 for messages it cannot parse; say what it expects instead."""
    messages = value.get("messages") if isinstance(value, dict) else None
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and m.get("type") in MESSAGE_TYPES for m in messages
    ):
        raise HTTPException(
            422,
            'input.messages must be a list of LangChain messages, e.g. [{"type": "human", "content": "..."}] '
            "(RemoteRunnable sends HumanMessage objects in this form).",
        )


async def _session_config(config: dict[str, Any], request: Request) -> dict[str, Any]:
    if request.method == "POST" and request.url.path.rstrip("/").rsplit("/", 1)[-1] in {
        "invoke",
        "stream",
        "batch",
        "stream_events",
        "stream_log",
    }:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(422, "The body is not valid JSON.") from None
        inputs = (
            body.get("inputs")
            if isinstance(body, dict) and "inputs" in body
            else [body.get("input") if isinstance(body, dict) else None]
        )
        for value in inputs if isinstance(inputs, list) else [None]:
            _check_messages(value)
    session_id = request.headers.get("x-session-id")
    state = services(request)
    if not await sessions.known(state.redis, session_id, state.settings.session_ttl_seconds):
        raise HTTPException(
            422, "Send the header X-Session-Id with an id from POST /api/sessions (it may have expired)."
        )
    return {**config, "configurable": {**config.get("configurable", {}), "thread_id": session_id}}


def add_agent_routes(app: FastAPI, graph: Any, context: Any) -> None:
    """The graph bound to the app's parts (its run context), as `/chat` runs it."""
    app.include_router(router)
    add_routes(
        app,
        graph.bind(context=context),
        path="/agent",
        per_req_config_modifier=_session_config,
        enabled_endpoints=["invoke", "batch", "stream", "stream_events", "playground", "input_schema", "output_schema"],
    )
