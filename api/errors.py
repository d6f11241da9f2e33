"""Error answers: every refusal is JSON `{"detail": "<sentence a person can act on>"}`.

Validation errors (bad JSON, wrong types, missing fields) become one readable 422 sentence, with pydantic's
list kept under `errors` for programs. Anything unexpected is logged and answered 500 without internals;
Redis being down is a 503.
"""

from __future__ import annotations

import logging

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.security import MAX_BODY_BYTES

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


def _entry(error: object) -> dict:
    """One problem as `{loc, msg, type}`; LangServe raises with plain strings ("Invalid JSON body")."""
    if isinstance(error, dict):
        return {key: value for key, value in error.items() if key in ("loc", "msg", "type")}
    return {"loc": ["body"], "msg": str(error), "type": "value_error"}


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = [_entry(e) for e in error.errors()]
    return JSONResponse({"detail": describe(errors), "errors": errors}, status_code=422)


BODY_NOT_PARSED = "There was an error parsing the body"  # FastAPI's words for a body json.loads cannot decode


async def http_error(request: Request, error: StarletteHTTPException) -> Response:
    """FastAPI's answers, with two of its terse ones made actionable: a body that is not UTF-8 is a 422 like any
    other unreadable body, and a body over the limit says the limit."""
    if error.status_code == 400 and error.detail == BODY_NOT_PARSED:
        detail = "Invalid request — the body is not valid JSON in UTF-8."
        return JSONResponse({"detail": detail}, status_code=422)
    if error.status_code == 413 and not str(error.detail).endswith("."):
        detail = f"The request body is too large: the limit is {MAX_BODY_BYTES} bytes."
        return JSONResponse({"detail": detail}, status_code=413)
    return await http_exception_handler(request, error)


async def redis_down(request: Request, error: redis.exceptions.RedisError) -> JSONResponse:
    log.error("Redis error on %s: %s", request.url.path, error)
    return JSONResponse({"detail": "Conversation storage (Redis) is unavailable; try again shortly."}, 503)


async def unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "Internal error; it was logged."}, status_code=500)


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(redis.exceptions.ConnectionError, redis_down)  # type: ignore[arg-type]
    app.add_exception_handler(redis.exceptions.TimeoutError, redis_down)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)
