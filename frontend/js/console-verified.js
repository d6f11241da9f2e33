// The console's "Verified answers" tab: curated answers the chat sends as written (no LLM) when a customer's
// question matches one of their question variants (api/verified.py). List, create, edit, enable/disable, delete;
// and a "Make verified answer" button on a ticket's detail and on review items (console.js announces those with
// the `console:ticket` and `console:review-item` events).
import { $, api, el, formatTime, registerTab, showTab } from "./console-common.js";
import { renderMarkdown, safeUrl } from "./render.js";

let editing = null; // the id being edited, or null for a new one

const lines = (text) => text.split("\n").map((line) => line.trim()).filter(Boolean);

/** "Title | https://…" per line (a bare URL is its own title). */
function parseSources(text) {
  return lines(text).map((line) => {
    const cut = line.lastIndexOf("|");
    return cut < 0 ? { title: "", url: line } : { title: line.slice(0, cut).trim(), url: line.slice(cut + 1).trim() };
  });
}

const formatSources = (sources) => sources.map((s) => (s.title && s.title !== s.url ? `${s.title} | ${s.url}` : s.url)).join("\n");

function showForm(item = null) {
  editing = item ? item.id : null;
  $("verified-form-title").textContent = item ? "Edit verified answer" : "New verified answer";
  $("verified-questions").value = item ? item.questions.join("\n") : "";
  $("verified-answer").value = item ? item.answer : "";
  $("verified-sources").value = item ? formatSources(item.sources) : "";
  $("verified-enabled").checked = item ? item.enabled : true;
  $("verified-form-error").hidden = true;
  $("verified-form").hidden = false;
  $("verified-questions").focus();
}

function hideForm() {
  editing = null;
  $("verified-form").hidden = true;
}

async function save(event) {
  event.preventDefault();
  const body = {
    questions: lines($("verified-questions").value),
    answer: $("verified-answer").value,
    sources: parseSources($("verified-sources").value),
    enabled: $("verified-enabled").checked,
  };
  const button = $("verified-save");
  button.disabled = true;
  try {
    if (editing) await api(`/api/verified/${encodeURIComponent(editing)}`, { method: "PATCH", body });
    else await api("/api/verified", { method: "POST", body });
    hideForm();
    await load();
    $("verified-status").textContent = "Saved.";
  } catch (error) {
    $("verified-form-error").textContent = `Not saved: ${error.message}`;
    $("verified-form-error").hidden = false;
  } finally {
    button.disabled = false;
  }
}

function card(item) {
  const node = el("li", "feedback-card verified-card");
  node.dataset.verified = item.id;
  const meta = el("div", "turn-meta");
  meta.append(el("span", `badge ${item.enabled ? "status-resolved" : "status-closed"}`, item.enabled ? "enabled" : "disabled"));
  meta.append(el("span", "", `updated ${formatTime(item.updated_at)}`));
  if (item.created_from?.kind && item.created_from.kind !== "manual") {
    meta.append(el("span", "", `from ${item.created_from.kind} ${item.created_from.id}`));
  }
  node.append(meta, el("h3", "", "Questions"));
  const questions = el("ul", "verified-questions");
  questions.append(...item.questions.map((q) => el("li", "", q)));
  const answer = el("div", "md");
  renderMarkdown(answer, item.answer, []);
  node.append(questions, el("h3", "", "Answer"), answer);
  if (item.sources.length) {
    const sources = el("ol", "verified-sources");
    for (const source of item.sources) {
      const url = safeUrl(source.url);
      const link = el(url ? "a" : "span", "", source.title || source.url);
      if (url) {
        link.href = url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
      }
      const entry = el("li");
      entry.append(link);
      sources.append(entry);
    }
    node.append(el("h3", "", "Sources"), sources);
  }
  const actions = el("div", "verified-actions");
  const button = (label, className, onClick) => {
    const b = el("button", `button small ${className}`, label);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  };
  actions.append(
    button("Edit", "ghost verified-edit", () => showForm(item)),
    button(item.enabled ? "Disable" : "Enable", "ghost verified-toggle", () => change(item, { enabled: !item.enabled })),
    button("Delete", "ghost verified-delete", () => remove(item)),
  );
  node.append(actions);
  return node;
}

async function change(item, body) {
  try {
    await api(`/api/verified/${encodeURIComponent(item.id)}`, { method: "PATCH", body });
    await load();
  } catch (error) {
    $("verified-status").textContent = `Not changed: ${error.message}`;
  }
}

async function remove(item) {
  if (!window.confirm(`Delete the verified answer to "${item.questions[0]}"?`)) return;
  try {
    await api(`/api/verified/${encodeURIComponent(item.id)}`, { method: "DELETE" });
    await load();
  } catch (error) {
    $("verified-status").textContent = `Not deleted: ${error.message}`;
  }
}

async function load() {
  $("verified-status").textContent = "Loading…";
  let data;
  try {
    data = await api("/api/verified");
  } catch (error) {
    $("verified-status").textContent = `Could not load verified answers: ${error.message}`;
    return [];
  }
  const items = data.verified || [];
  $("verified-list").replaceChildren(...items.map(card));
  const { max_answers: max } = data.limits || {};
  $("verified-status").textContent = items.length
    ? `${items.length} verified answer${items.length === 1 ? "" : "s"}${max ? ` (at most ${max})` : ""}`
    : "No verified answers yet. Make one from a ticket, a review item, or here.";
  return items;
}

/** "Make verified answer" from a ticket or an answer: created at once, then opened for editing in this tab. */
function makeButton(body) {
  const wrap = el("div", "make-verified");
  const button = el("button", "button ghost small make-verified-button", "Make verified answer");
  button.type = "button";
  const message = el("span", "make-verified-message");
  message.setAttribute("role", "status");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const item = await api("/api/verified", { method: "POST", body });
      showTab("verified");
      showForm(item);
    } catch (error) {
      message.textContent = ` ${error.message}`;
      button.disabled = false;
    }
  });
  wrap.append(button, message);
  return wrap;
}

document.addEventListener("console:ticket", ({ detail }) => {
  // From a resolved ticket: its last question, and the lead's last note as the answer.
  if (["resolved", "closed"].includes(detail.ticket.status)) detail.pane.append(makeButton({ from_ticket: detail.ticket.ticket_id }));
});

document.addEventListener("console:review-item", ({ detail }) => {
  const { item, card: node } = detail;
  if (item.message_id) node.append(makeButton({ from_message: item.message_id }));
  else if (item.ticket_id) node.append(makeButton({ from_ticket: item.ticket_id }));
});

$("verified-new").addEventListener("click", () => showForm());
$("verified-cancel").addEventListener("click", hideForm);
$("verified-form").addEventListener("submit", save);
registerTab("verified", load);
