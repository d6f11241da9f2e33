"""A stand-in for the model's words: an OpenAI-compatible chat server that replies with scripted text.

It is not a model and decides nothing. It replaces only *what the model says*, so that a test can make the
model say exactly the thing the app must handle (an echo of its instructions, an invented citation, a false
promise, a crash mid-answer) — everything else stays real: the app reaches it through LLM_BASE_URL over real
HTTP, `langchain_openai.ChatOpenAI` parses its `text/event-stream` replies as it parses vLLM's or llama.cpp's,
and retrieval, checks, storage and logging run as in production.

    with scripted_llm() as llm:              # a real HTTP server on 127.0.0.1, in a thread
        env["LLM_BASE_URL"] = llm.url        # "http://127.0.0.1:<port>/v1"
        llm.script("Reset it from the login page [1].")
        …                                    # every completion from now on streams that text
        llm.requests[-1]["messages"]         # the prompt the app sent

`script(text, die_after_chunks=n)` sends n content chunks, then drops the connection without ending the
chunked body — what the app sees when the model server dies mid-answer. `reset_reused(n)`: the next n requests
that arrive on a kept-alive connection are answered with a TCP reset — what a client sees when the server closes
an idle connection just as the client sends a request on it.
Served: `GET /v1/models`, `POST /v1/chat/completions` (streaming, and non-streaming for completeness).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "scripted"


@dataclass(frozen=True)
class Script:
    text: str
    die_after_chunks: int | None = None
    chunk_words: int = 1
    delay: float = 0.02  # seconds between chunks, so that streaming is observable
    first_delay: float = 0.0  # seconds before the first piece: a local model reading a long prompt


def split_chunks(text: str, words: int = 1) -> list[str]:
    """`text` in pieces of `words` words, each with the whitespace after it (joined they give `text` back)."""
    pieces = re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), max(1, words))]


class ScriptedLLM:
    """What the tests hold: the base URL, the current script, and the requests received."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.requests: list[dict[str, Any]] = []  # each request body, in order (its "messages" is the prompt)
        self.headers: list[dict[str, str]] = []  # each request's HTTP headers, in the same order
        self._script = Script("This is a scripted answer.")
        self._lock = threading.Lock()
        self._resets = 0  # requests on a reused connection still to answer with a reset (`reset_reused`)
        self.resets_sent = 0

    def script(
        self,
        text: str,
        *,
        die_after_chunks: int | None = None,
        chunk_words: int = 1,
        delay: float = 0.02,
        first_delay: float = 0.0,
    ) -> None:
        """What every completion replies from now on (until the next call)."""
        with self._lock:
            self._script = Script(text, die_after_chunks, chunk_words, delay, first_delay)

    def reset_reused(self, requests: int = 1) -> None:
        """Answer the next `requests` requests that come on an already used keep-alive connection with a reset."""
        with self._lock:
            self._resets = requests

    def take_reset(self) -> bool:
        with self._lock:
            if self._resets <= 0:
                return False
            self._resets -= 1
            self.resets_sent += 1
            return True

    @property
    def current(self) -> Script:
        with self._lock:
            return self._script

    def chunks(self) -> list[str]:
        """The content pieces the current script streams (all of them, before any cut)."""
        script = self.current
        return split_chunks(script.text, script.chunk_words)

    def record(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers or {})


def _chunk(completion_id: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _usage(prompt: list[Any], text: str) -> dict[str, int]:
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in prompt if isinstance(m, dict))
    completion_tokens = len(text.split())
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _handler(llm: ScriptedLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # chunked bodies: a cut is then visible as an incomplete body

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "tests"}]})
            elif self.path == "/health":
                self._json(200, {"status": "ok"})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._json(400, {"error": {"message": "body is not JSON"}})
                return
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            served, self.served = getattr(self, "served", 0), getattr(self, "served", 0) + 1  # on this connection
            if served and llm.take_reset():
                self._reset()
                return
            llm.record(body, dict(self.headers))
            script = llm.current
            if body.get("stream"):
                with contextlib.suppress(ConnectionError):
                    self._stream(body, script)
                return
            completion = {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": script.text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(body.get("messages", []), script.text),
            }
            self._json(200, completion)

        def _send(self, payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
            event = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()

        def _stream(self, body: dict[str, Any], script: Script) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
            self._send(_chunk(completion_id, {"role": "assistant", "content": ""}))
            time.sleep(script.first_delay)
            for i, piece in enumerate(split_chunks(script.text, script.chunk_words)):
                if script.die_after_chunks is not None and i >= script.die_after_chunks:
                    self._die()
                    return
                time.sleep(script.delay)
                self._send(_chunk(completion_id, {"content": piece}))
            if script.die_after_chunks is not None:  # fewer chunks than the cut: die at the end instead
                self._die()
                return
            self._send(_chunk(completion_id, {}, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = _usage(body.get("messages", []), script.text)
                self._send(_chunk(completion_id, {}) | {"choices": [], "usage": usage})
            self._send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _reset(self) -> None:
            """Close with a TCP reset (SO_LINGER 0), no response: an idle connection closed by the server."""
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()

        def _die(self) -> None:
            """Drop the connection mid-body: no finish chunk, no [DONE], no closing zero-length chunk."""
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


@contextlib.contextmanager
def scripted_llm(host: str = "127.0.0.1") -> Iterator[ScriptedLLM]:
    """Start the stand-in on a free port in a background thread; stop it on exit."""
    llm = ScriptedLLM("")
    server = ThreadingHTTPServer((host, 0), _handler(llm))
    server.daemon_threads = True
    llm.url = f"http://{host}:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, name="scripted-llm", daemon=True)
    thread.start()
    try:
        yield llm
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
