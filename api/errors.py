"""Error answers: every refusal is JSON `{"detail": "<sentence a person can act on>"}`.

Validation errors (bad JSON, wrong types, missing fields) become one readable 422 sentence, with pydantic's
list kept under `errors` for programs. Anything unexpected is logged and answered 500 without internals;
Redis being down is a 503.
"""

from __future__ import annotations

import logging

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


def describe(errors: list[dict]) -> str:
    """`body.message: String should have at least 1 character; query.k: …` → one line per problem."""
    parts = []
    for error in errors:
        if error.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON (error near character {error['loc'][-1]})")
            continue
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid').removeprefix('Value error, ')}")
    return "Invalid request — " + "; ".join(parts)


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = [{key: value for key, value in e.items() if key in ("loc", "msg", "type")} for e in error.errors()]
    return JSONResponse({"detail": describe(errors), "errors": errors}, status_code=422)


async def redis_down(request: Request, error: redis.exceptions.RedisError) -> JSONResponse:
    log.error("Redis error on %s: %s", request.url.path, error)
    return JSONResponse({"detail": "Conversation storage (Redis) is unavailable; try again shortly."}, 503)


async def unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "Internal error; it was logged."}, status_code=500)


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(redis.exceptions.ConnectionError, redis_down)  # type: ignore[arg-type]
    app.add_exception_handler(redis.exceptions.TimeoutError, redis_down)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)
