"""The HTTP/1.1 protocol the product's uvicorn runs: httptools, as uvicorn picks by default, with one change —
a request it cannot parse (malformed, or a head over llhttp's 80 KiB, such as a 100 kB URL) is refused in JSON
with the security headers, like every refusal the app itself makes, instead of uvicorn's plain-text 400.

    uvicorn --factory server:create_app --http api.http_protocol:Protocol
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.security import PAGE_CSP

HTTP_PROTOCOL = "api.http_protocol:Protocol"  # uvicorn's `--http` / `Config(http=…)`
DETAIL = (
    "The request could not be read: it is not valid HTTP/1.1, or its URL and headers are over 80 KiB "
    "(URLs over 8 KiB are refused anyway)."
)
HEADERS = {
    "content-type": "application/json",
    "content-security-policy": PAGE_CSP.format(frame_ancestors="'self'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "connection": "close",
}


class Protocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"detail": DETAIL}).encode()
        head = [STATUS_LINE[400]]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [f"{name}: {value}\r\n".encode() for name, value in HEADERS.items()]
        head.append(f"content-length: {len(body)}\r\n\r\n".encode())
        self.transport.write(b"".join(head) + body)
        self.transport.close()
