"""`/help/…`: the product's own documentation as web pages, so the bot's source links open somewhere.

The embedded default indexes `docs/` with the base URL `http://HOST:PORT/help/`; headings get the same
anchors the ingester puts in chunk URLs, so a citation lands on its section.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse
from markdown_it import MarkdownIt

from tools.anchors import Anchors, heading_text

DOCS = Path(__file__).resolve().parents[1] / "docs"
router = APIRouter(tags=["help"])


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def heading_open(self, tokens, idx, options, env):  # type: ignore[no-untyped-def]
        anchors = env.setdefault("anchors", Anchors())  # one per page, numbered like the ingester's
        tokens[idx].attrSet("id", anchors(heading_text(tokens[idx + 1])))
        return md.renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("heading_open", heading_open)
    return md


_md = _markdown()


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{html.escape(title)}</title><link rel="stylesheet" href="/help-static/help.css"></head>'
        f'<body><main class="help">{body}</main></body></html>'
    )


@router.get("/help/", response_class=HTMLResponse)
async def help_index() -> str:
    items = "".join(
        f'<li><a href="/help/{p.relative_to(DOCS)}">{html.escape(p.stem.replace("-", " ").capitalize())}</a></li>'
        for p in sorted(DOCS.rglob("*.md"))
    )
    return _page("Documentation", f"<h1>Documentation</h1><ul>{items}</ul>")


@router.get("/help/{path:path}", response_model=None)
async def help_page(path: str) -> HTMLResponse | FileResponse:
    target = (DOCS / path).resolve()
    if not target.is_relative_to(DOCS) or not target.is_file():
        raise HTTPException(404, f"no documentation page {path!r}")
    if target.suffix != ".md":
        return FileResponse(target)
    text = target.read_text(encoding="utf-8", errors="replace")
    return HTMLResponse(_page(target.stem, _md.render(text, {})))


@router.get("/help-static/help.css", include_in_schema=False)
async def help_css() -> FileResponse:
    return FileResponse(Path(__file__).with_name("help.css"), media_type="text/css")
