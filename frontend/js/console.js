// Support-lead console: sign in with the admin token (kept in sessionStorage: this tab only), list tickets
// by status (newest first), read a ticket's whole transcript with the sources the bot showed, change its
// status with a note, review thumbs-down answers, and see the passages ingestion quarantined.
import { leadRequest } from "./api.js";
import { $, api, currentToken, el, formatTime, onTokenRefused, registerTab, setToken, wireTabs } from "./console-common.js";
import { renderMarkdown, safeUrl } from "./render.js";

const statusLabel = (status) => String(status || "open").replace(/_/g, " ");

let selectedId = null;

function showSignIn(message = "") {
  $("workspace").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("sign-in-error").hidden = !message;
  $("token").focus();
}

function signOut(message = "") {
  setToken(null);
  showSignIn(message);
}
onTokenRefused(() => signOut("Your token was refused. Sign in again."));

async function signIn(candidate) {
  try {
    await leadRequest(candidate, "/api/tickets?status=open");
  } catch (error) {
    const refused = error.status === 401 || error.status === 403;
    showSignIn(refused ? "That token was refused." : `Could not sign in: ${error.message}`);
    return;
  }
  setToken(candidate);
  $("sign-in").hidden = true;
  $("workspace").hidden = false;
  $("sign-out").hidden = false;
  await loadTickets();
  $("status-filter").focus();
}

async function loadTickets() {
  const status = $("status-filter").value;
  const list = $("ticket-list");
  $("tickets-status").textContent = "Loading…";
  let tickets;
  try {
    tickets = (await api(`/api/tickets${status ? `?status=${encodeURIComponent(status)}` : ""}`)).tickets;
  } catch (error) {
    $("tickets-status").textContent = `Could not load tickets: ${error.message}`;
    return;
  }
  list.replaceChildren(...tickets.map(ticketRow));
  $("tickets-status").textContent = tickets.length
    ? `${tickets.length} ticket${tickets.length === 1 ? "" : "s"}`
    : "No tickets with this status.";
}

function ticketRow(ticket) {
  const item = el("li");
  const row = el("button", "ticket-row");
  row.type = "button";
  row.dataset.ticket = ticket.ticket_id;
  row.setAttribute("aria-current", String(ticket.ticket_id === selectedId));
  const top = el("span", "ticket-row-top");
  top.append(el("strong", "", ticket.ticket_id), el("span", `badge status-${ticket.status}`, statusLabel(ticket.status)));
  row.append(top, el("span", "ticket-row-reason", ticket.reason || "(no reason given)"));
  row.append(el("span", "ticket-row-meta", [formatTime(ticket.created_at), ticket.contact_email].filter(Boolean).join(" · ")));
  row.addEventListener("click", () => openTicket(ticket.ticket_id));
  item.append(row);
  return item;
}

async function openTicket(ticketId) {
  selectedId = ticketId;
  for (const row of document.querySelectorAll(".ticket-row")) {
    row.setAttribute("aria-current", String(row.dataset.ticket === ticketId));
  }
  const pane = $("ticket-detail");
  pane.replaceChildren(el("p", "placeholder", "Loading…"));
  try {
    const ticket = await api(`/api/tickets/${encodeURIComponent(ticketId)}`);
    pane.replaceChildren(...ticketDetail(ticket));
    document.dispatchEvent(new CustomEvent("console:ticket", { detail: { ticket, pane } })); // hook: other tabs add buttons
  } catch (error) {
    pane.replaceChildren(el("p", "form-error", `Could not load ticket ${ticketId}: ${error.message}`));
  }
  pane.focus();
}

function ticketDetail(ticket) {
  const head = el("header", "detail-head");
  head.append(el("h2", "", `Ticket ${ticket.ticket_id}`), el("span", `badge status-${ticket.status}`, statusLabel(ticket.status)));
  const facts = el("dl", "facts");
  const fact = (term, value, node) => {
    if (!value && !node) return;
    facts.append(el("dt", "", term));
    const dd = el("dd", "", node ? undefined : value);
    if (node) dd.append(node);
    facts.append(dd);
  };
  fact("Opened", formatTime(ticket.created_at));
  fact("Reason", ticket.reason || "(none given)");
  if (ticket.contact_email) {
    const mail = el("a", "", ticket.contact_email);
    mail.href = `mailto:${encodeURIComponent(ticket.contact_email).replace(/%40/g, "@")}`;
    fact("Contact", null, mail);
  }
  fact("Session", ticket.session_id);

  const transcript = el("section", "transcript");
  transcript.append(el("h3", "", "Conversation"));
  const turns = el("ol", "turns");
  for (const turn of ticket.transcript) turns.append(transcriptTurn(turn, ticket.sources));
  if (!turns.children.length) turns.append(el("li", "placeholder", "No messages."));
  transcript.append(turns);

  const parts = [head, facts, transcript];
  if (ticket.sources.length) parts.push(sourcesSection(ticket.sources));
  parts.push(notesSection(ticket.notes), updateForm(ticket));
  return parts;
}

/** One transcript entry ({role: "user" | "assistant", content, at, interrupted}). */
function transcriptTurn(turn, sources) {
  const item = el("li", `turn ${turn.role}`);
  const meta = el("div", "turn-meta");
  const lead = turn.by === "human" ? `${turn.name} (person)` : "Bot"; // a lead's turn or record (live takeover)
  meta.append(el("strong", "", turn.role === "user" ? "Customer" : lead));
  if (turn.at) meta.append(el("span", "", formatTime(turn.at)));
  if (turn.interrupted) meta.append(el("span", "badge", "interrupted"));
  const body = el("div", "md");
  if (turn.role === "user") body.textContent = turn.content;
  else renderMarkdown(body, turn.content, sources);
  item.append(meta, body);
  return item;
}

function sourcesSection(sources) {
  const section = el("section", "detail-sources");
  section.append(el("h3", "", "Sources the bot showed"));
  const list = el("ol");
  for (const source of sources) {
    const item = el("li");
    item.value = Number(source.n) || list.children.length + 1;
    const url = safeUrl(source.url);
    const title = el(url ? "a" : "span", "", source.title || source.url || "untitled");
    if (url) {
      title.href = url;
      title.target = "_blank";
      title.rel = "noopener noreferrer";
    }
    item.append(title);
    if (source.snippet) item.append(el("p", "source-snippet", source.snippet));
    list.append(item);
  }
  section.append(list);
  return section;
}

function notesSection(notes) {
  const section = el("section", "notes");
  section.append(el("h3", "", "Notes"));
  const list = el("ul");
  for (const note of notes) {
    // {at, status, note}: a status change, with or without a note
    const item = el("li", "", note.note || "");
    item.append(el("span", "note-meta", ` — ${[statusLabel(note.status), formatTime(note.at)].filter(Boolean).join(", ")}`));
    list.append(item);
  }
  if (!notes.length) list.append(el("li", "placeholder", "No notes yet."));
  section.append(list);
  return section;
}

function updateForm(ticket) {
  const form = el("form", "update");
  form.append(el("h3", "", "Update"));
  const statusLabelEl = el("label", "", "Status");
  statusLabelEl.htmlFor = "update-status";
  const select = el("select");
  select.id = "update-status";
  const statuses = ["open", "pending", "resolved", "closed"];
  if (ticket.status && !statuses.includes(ticket.status)) statuses.push(ticket.status);
  for (const status of statuses) {
    const option = el("option", "", statusLabel(status));
    option.value = status;
    option.selected = status === ticket.status;
    select.append(option);
  }
  const noteLabel = el("label", "", "Note");
  noteLabel.htmlFor = "update-note";
  const note = el("textarea");
  note.id = "update-note";
  note.rows = 3;
  const save = el("button", "button primary", "Save");
  save.type = "submit";
  const message = el("p", "update-message");
  message.setAttribute("role", "status");
  form.append(statusLabelEl, select, noteLabel, note, save, message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { status: select.value };
    if (note.value.trim()) body.note = note.value.trim();
    save.disabled = true;
    try {
      await api(`/api/tickets/${encodeURIComponent(ticket.ticket_id)}`, { method: "PATCH", body });
      await loadTickets();
      await openTicket(ticket.ticket_id);
      document.querySelector(".update-message").textContent = "Saved.";
    } catch (error) {
      message.textContent = `Not saved: ${error.message}`;
      save.disabled = false;
    }
  });
  return form;
}

async function loadFeedback() {
  $("feedback-status").textContent = "Loading…";
  let items;
  try {
    items = (await api("/api/feedback?rating=down")).feedback;
  } catch (error) {
    $("feedback-status").textContent = `Could not load feedback: ${error.message}`;
    return;
  }
  $("feedback-list").replaceChildren(...items.map(feedbackItem));
  $("feedback-status").textContent = items.length ? `${items.length} answer${items.length === 1 ? "" : "s"} rated down` : "No thumbs-down answers.";
}

function feedbackItem(item) {
  const card = el("li", "feedback-card");
  const meta = el("div", "turn-meta");
  meta.append(el("span", "", formatTime(item.at)));
  if (item.session_id) meta.append(el("span", "", `session ${item.session_id}`));
  card.append(meta);
  if (item.question) {
    card.append(el("h3", "", "Question"), el("p", "question", item.question));
  }
  const answer = el("div", "md");
  renderMarkdown(answer, item.answer ?? "", item.sources || []);
  card.append(el("h3", "", "Answer"), answer);
  if (item.comment) card.append(el("h3", "", "Comment"), el("p", "comment", item.comment));
  return card;
}

const REVIEW_KINDS = { escalation: "Escalated", low_relevance: "Low relevance", thumbs_down: "Thumbs down", sampled: "Sampled" };

async function loadReview() {
  $("review-status").textContent = "Loading…";
  $("unanswered-status").textContent = "Loading…";
  try {
    const [queue, report] = await Promise.all([api("/api/review?limit=100"), api("/api/review/unanswered")]);
    const items = queue?.items || [];
    $("review-list").replaceChildren(
      ...items.map((item) => {
        const card = feedbackItem({ ...item, at: item.queued_at });
        card.querySelector(".turn-meta").prepend(el("span", `badge kind-${item.kind}`, REVIEW_KINDS[item.kind] || item.kind));
        document.dispatchEvent(new CustomEvent("console:review-item", { detail: { item, card } })); // hook, as above
        return card;
      }),
    );
    $("review-status").textContent = items.length ? `${items.length} turn${items.length === 1 ? "" : "s"} to review` : "Nothing to review.";
    const groups = report?.groups || [];
    $("unanswered-list").replaceChildren(
      ...groups.map((group) => {
        const item = el("li", "unanswered-group");
        item.append(el("strong", "", `${group.size} × `), el("span", "", group.example));
        if (group.questions.length > 1) {
          const others = el("ul", "");
          others.append(...group.questions.slice(1).map((q) => el("li", "", q)));
          item.append(others);
        }
        return item;
      }),
    );
    $("unanswered-status").textContent = groups.length ? "Largest gaps in the documentation first." : "No unanswered questions.";
  } catch (error) {
    $("review-status").textContent = `Could not load the review queue: ${error.message}`;
    $("unanswered-status").textContent = "";
  }
}

async function loadQuarantine() {
  $("quarantine-status").textContent = "Loading…";
  let chunks;
  try {
    chunks = (await api("/api/review/quarantine")).chunks;
  } catch (error) {
    $("quarantine-status").textContent = `Could not load the quarantine: ${error.message}`;
    return;
  }
  $("quarantine-list").replaceChildren(...chunks.map(quarantineItem));
  $("quarantine-status").textContent = chunks.length
    ? `${chunks.length} passage${chunks.length === 1 ? "" : "s"} kept out of the knowledge base`
    : "Nothing is quarantined.";
}

/** One quarantined chunk ({source, url, title, section, kind, reason, excerpt, quarantined_at}); all as text. */
function quarantineItem(chunk) {
  const card = el("li", "feedback-card quarantined");
  const meta = el("div", "turn-meta");
  meta.append(el("span", "badge", String(chunk.kind || "").replace(/_/g, " ")), el("span", "", formatTime(chunk.quarantined_at)));
  card.append(meta, el("h3", "", [chunk.title, chunk.section].filter(Boolean).join(" › ") || "(untitled)"));
  const facts = el("dl", "facts");
  const url = safeUrl(chunk.url);
  const link = el(url ? "a" : "span", "", chunk.url);
  if (url) {
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
  }
  for (const [term, value] of [["File", el("code", "", chunk.source)], ["Link", link], ["Why", el("span", "", chunk.reason)]]) {
    const dd = el("dd");
    dd.append(value);
    facts.append(el("dt", "", term), dd);
  }
  card.append(facts, el("blockquote", "excerpt", chunk.excerpt));
  return card;
}

registerTab("tickets", loadTickets);
registerTab("feedback", loadFeedback);
registerTab("review", loadReview);
registerTab("quarantine", loadQuarantine);

$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("token").value.trim());
});
$("sign-out").addEventListener("click", () => signOut());
$("status-filter").addEventListener("change", loadTickets);
$("refresh").addEventListener("click", loadTickets);
wireTabs();

// The link `./run` prints carries a generated token in the fragment (never sent to the server): take it into this
// tab's storage and drop it from the address bar, so it is neither bookmarked nor shared by accident.
const linked = new URLSearchParams(location.hash.slice(1)).get("token");
if (linked) history.replaceState(null, "", location.pathname + location.search);
if (linked) signIn(linked);
else if (currentToken()) signIn(currentToken());
else showSignIn();
document.documentElement.dataset.ready = "true";
