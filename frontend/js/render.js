// Markdown → safe DOM. Everything the model or a knowledge-base document produces passes through here:
// marked renders Markdown (raw HTML is shown as text, never interpreted), DOMPurify sanitises the result
// as a second line of defence, links open in a new tab, and inline [n] markers become links to sources.
import { Marked } from "/vendor/marked.esm.js";
import DOMPurify from "/vendor/purify.es.mjs";

const escapeHtml = (text) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    // Raw HTML in an answer or a document is displayed literally: a bot quoting `<script>` shows it.
    html: ({ text }) => escapeHtml(text),
  },
});

const purifier = DOMPurify(window);
purifier.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});
const PURIFY_OPTIONS = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["img", "style", "form", "input", "button", "textarea", "select", "video", "audio", "picture"],
  RETURN_DOM_FRAGMENT: true,
};

/** Only http(s) and same-origin relative URLs become links; anything else (javascript:, data:) stays text. */
export function safeUrl(url) {
  if (typeof url !== "string" || !url.trim()) return null;
  try {
    const parsed = new URL(url, window.location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** Sanitised DOM fragment for a Markdown string (safe to append as is). */
export function markdownToFragment(markdown, sources = []) {
  const html = marked.parse(String(markdown ?? ""));
  const fragment = purifier.sanitize(html, PURIFY_OPTIONS);
  linkCitations(fragment, sources);
  return fragment;
}

/** Render Markdown into an element, replacing what was there (called on every streamed token batch). */
export function renderMarkdown(element, markdown, sources = []) {
  element.replaceChildren(markdownToFragment(markdown, sources));
}

const CITATION = /\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]/g;

/** Turn "[2]" or "[1, 3]" in text (outside code and links) into links to the matching sources. */
export function linkCitations(root, sources) {
  if (!sources?.length) return;
  const byNumber = new Map(sources.map((source) => [Number(source.n), source]));
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) =>
      node.parentElement?.closest("code, pre, a") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
  });
  const textNodes = [];
  while (walker.nextNode()) textNodes.push(walker.currentNode);
  for (const node of textNodes) {
    const text = node.nodeValue;
    const matches = [...text.matchAll(CITATION)];
    if (!matches.length) continue;
    const parts = document.createDocumentFragment();
    let last = 0;
    for (const match of matches) {
      const numbers = match[1].split(",").map((n) => Number(n.trim()));
      if (!numbers.every((n) => byNumber.has(n))) continue;
      parts.append(text.slice(last, match.index));
      numbers.forEach((n, i) => {
        if (i) parts.append(" ");
        parts.append(citationLink(n, byNumber.get(n)));
      });
      last = match.index + match[0].length;
    }
    if (last === 0) continue;
    parts.append(text.slice(last));
    node.replaceWith(parts);
  }
}

function citationLink(n, source) {
  const url = safeUrl(source.url);
  const link = document.createElement(url ? "a" : "span");
  link.className = "cite";
  link.textContent = `[${n}]`;
  link.title = source.title || `Source ${n}`;
  if (url) {
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.setAttribute("aria-label", `Source ${n}: ${source.title || url}`);
  }
  return link;
}

