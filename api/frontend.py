"""The web front end: chat page, support-lead console, embeddable widget, and the two browser libraries.

Pages and scripts come from `frontend/` (plain HTML + ES modules, no build step). marked and DOMPurify are
served from `node_modules` (installed by `npm ci` from package-lock.json) under `/vendor/`, and only the
files on the allow-list below: node_modules is never exposed as a folder.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

ROOT = Path(__file__).resolve().parents[1]
FRONTEND = ROOT / "frontend"
NODE_MODULES = ROOT / "node_modules"

# URL name under /vendor/ → file inside node_modules. Source maps only help browser dev tools.
VENDOR_FILES: dict[str, str] = {
    "marked.esm.js": "marked/lib/marked.esm.js",
    "marked.esm.js.map": "marked/lib/marked.esm.js.map",
    "purify.es.mjs": "dompurify/dist/purify.es.mjs",
    "purify.es.mjs.map": "dompurify/dist/purify.es.mjs.map",
    "eventsource-parser.js": "eventsource-parser/dist/index.js",
    "chart.umd.js": "chart.js/dist/chart.umd.js",  # a classic script: the ESM build imports bare "@kurkle/color"
    "chart.umd.js.map": "chart.js/dist/chart.umd.js.map",
}

JS = "text/javascript; charset=utf-8"
# Pages are small and change with each release: revalidate instead of serving a stale copy.
NO_CACHE = {"Cache-Control": "no-cache"}


def _page(name: str) -> FileResponse:
    return FileResponse(FRONTEND / name, media_type="text/html; charset=utf-8", headers=NO_CACHE)


def add_frontend_routes(app: FastAPI) -> None:
    """Serve `/`, `/console`, `/widget.js`, `/widget-demo`, `/static/…` and the allow-listed `/vendor/…`."""

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        """The customer chat; `/?embed=1` is the compact mode the widget shows in its iframe."""
        return _page("index.html")

    @app.get("/console", include_in_schema=False)
    async def console_page() -> FileResponse:
        """Support-lead console (signs in with ADMIN_TOKEN; the token stays in the browser tab)."""
        return _page("console.html")

    @app.get("/widget-demo", include_in_schema=False)
    async def widget_demo_page() -> FileResponse:
        """A sample company page with the widget's one script tag."""
        return _page("widget-demo.html")

    @app.get("/widget.js", include_in_schema=False)
    async def widget_script() -> FileResponse:
        """The embed script other sites load; no-cache so a release reaches them at once."""
        return FileResponse(FRONTEND / "widget.js", media_type=JS, headers=NO_CACHE)

    @app.get("/vendor/{name}", include_in_schema=False)
    async def vendor_file(name: str) -> FileResponse:
        """One allow-listed library file from node_modules; a clear 503 if `npm ci` was never run."""
        relative = VENDOR_FILES.get(name)
        if relative is None:
            raise HTTPException(404, f"no vendor file {name!r}")
        path = NODE_MODULES / relative
        if not path.is_file():
            raise HTTPException(503, f"{relative} is missing: run `npm ci` in {ROOT}")
        media_type = "application/json" if name.endswith(".map") else JS
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static", StaticFiles(directory=FRONTEND), name="static")
