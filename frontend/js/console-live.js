// The console's "Live" tab: conversations waiting for a person (escalated, longest wait first) and those a lead
// holds now; join one under the lead's display name (kept in localStorage as their profile), read the thread,
// reply, show typing both ways, hand back to the bot or resolve the ticket. The thread comes from
// GET /api/live/{id}; what happens next arrives on GET /api/live/{id}/events (SSE, read with sse.js after the
// thread's cursor, resumed after the last event id when the stream drops).
import { $, api, currentToken, el, formatTime, registerTab, tokenRefused } from "./console-common.js";
import { renderMarkdown } from "./render.js";
import { readEvents } from "./sse.js";

const NAME_KEY = "support-console.lead-name";
const LIST_EVERY_MS = 5000;
const TYPING_SHOWN_MS = 6000;
const TYPING_SEND_MS = 2000;

let selected = null; // {sessionId, live, cursor, controller}
let listTimer = 0;
let typingTimer = 0;
let lastTypingSent = 0;

const leadName = () => $("live-lead-name").value.trim();
const path = (sessionId, action = "") => `/api/live/${encodeURIComponent(sessionId)}${action ? `/${action}` : ""}`;

function waited(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

async function loadList() {
  clearTimeout(listTimer);
  if ($("live-view").hidden) return; // another tab: stop polling until this one is opened again
  try {
    const { conversations } = await api("/api/live");
    $("live-list").replaceChildren(...conversations.map(row));
    $("live-status").textContent = conversations.length
      ? `${conversations.filter((c) => c.status === "waiting").length} waiting · ${conversations.filter((c) => c.status === "live").length} live`
      : "Nobody is waiting for a person.";
  } catch (error) {
    $("live-status").textContent = `Could not load the conversations: ${error.message}`;
  }
  listTimer = setTimeout(loadList, LIST_EVERY_MS);
}

function row(conversation) {
  const item = el("li");
  const button = el("button", "live-row");
  button.type = "button";
  button.dataset.session = conversation.session_id;
  button.setAttribute("aria-current", String(conversation.session_id === selected?.sessionId));
  const top = el("span", "ticket-row-top");
  const waiting = conversation.status === "waiting";
  top.append(
    el("span", `badge ${waiting ? "live-waiting" : "live-held"}`, waiting ? "waiting" : `live · ${conversation.lead}`),
    el("strong", "", conversation.ticket_id || conversation.session_id),
  );
  const meta = waiting
    ? `${conversation.reason || ""} · waiting ${waited(conversation.wait_seconds)}`
    : `${conversation.reason || ""} · joined ${formatTime(conversation.joined_at)}`;
  button.append(top, el("span", "live-row-meta", meta));
  if (conversation.last_message) button.append(el("span", "live-row-preview", conversation.last_message));
  button.addEventListener("click", () => openConversation(conversation.session_id));
  item.append(button);
  return item;
}

function turnItem(turn) {
  const kind = turn.role === "event" ? "event" : turn.role === "user" ? "user" : turn.by === "human" ? "human" : "bot";
  const item = el("li", `live-turn ${kind}`);
  if (turn.message_id) item.dataset.messageId = turn.message_id;
  const meta = el("div", "turn-meta");
  const who = { user: "Customer", bot: "Bot", human: `${turn.name} (person)`, event: "" }[kind];
  if (who) meta.append(el("strong", "", who));
  if (turn.at) meta.append(el("span", "", formatTime(turn.at)));
  const body = el("div", kind === "bot" ? "turn-text md" : "turn-text");
  if (kind === "bot") renderMarkdown(body, turn.content ?? "", turn.sources || []); // as the chat shows it, sanitised
  else body.textContent = turn.content ?? "";
  item.append(meta, body);
  return item;
}

function appendTurn(turn) {
  const thread = $("live-thread");
  if (turn.message_id && [...thread.children].some((n) => n.dataset.messageId === turn.message_id)) return;
  thread.append(turnItem(turn));
  thread.scrollTop = thread.scrollHeight;
}

async function openConversation(sessionId) {
  closeConversation();
  for (const button of document.querySelectorAll(".live-row")) {
    button.setAttribute("aria-current", String(button.dataset.session === sessionId));
  }
  $("live-detail").hidden = false;
  $("live-detail-status").textContent = "Loading…";
  let data;
  try {
    data = await api(path(sessionId));
  } catch (error) {
    $("live-detail-status").textContent = `Could not open the conversation: ${error.message}`;
    return;
  }
  selected = { sessionId, live: data.live, cursor: data.cursor, controller: new AbortController() };
  $("live-title").textContent = data.ticket ? `Ticket ${data.ticket.ticket_id} · ${data.ticket.reason}` : sessionId;
  $("live-thread").replaceChildren(...data.messages.map(turnItem));
  $("live-thread").scrollTop = $("live-thread").scrollHeight;
  showState();
  listen(selected);
}

function closeConversation() {
  selected?.controller.abort();
  selected = null;
  hideTyping();
}

/** Which buttons make sense: join when free, reply / hand back while this lead holds it. */
function showState() {
  const live = selected.live;
  const mine = live.mode === "human" && live.lead === leadName();
  const other = live.mode === "human" && !mine;
  $("live-join").hidden = mine;
  $("live-join").disabled = other;
  $("live-hand-back").hidden = !mine;
  $("live-composer").hidden = !mine;
  $("live-resolve").disabled = other;
  $("live-detail-status").textContent = other
    ? `${live.lead} holds this conversation.`
    : mine
      ? "You hold this conversation: the bot is not answering."
      : "The bot answers this conversation.";
}

async function listen(current) {
  let wait = 1000;
  while (!current.controller.signal.aborted) {
    try {
      const response = await fetch(`${path(current.sessionId, "events")}?after=${encodeURIComponent(current.cursor)}`, {
        headers: { Accept: "text/event-stream", Authorization: `Bearer ${currentToken()}` },
        signal: current.controller.signal,
      });
      if (response.status === 401 || response.status === 403) return tokenRefused();
      if (response.status >= 400 && response.status < 500) return; // gone, or refused: retrying cannot help
      if (response.ok) {
        wait = 1000;
        for await (const { event, data } of readEvents(response, current.controller.signal)) {
          onEvent(current, event, JSON.parse(data));
        }
      }
    } catch {
      if (current.controller.signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 15000);
  }
}

function onEvent(current, event, data) {
  if (current !== selected) return;
  if (data.event_id) current.cursor = data.event_id;
  const eventTurn = (kind, text) => appendTurn({ role: "event", message_id: data.message_id, content: text, at: data.at, event: kind });
  switch (event) {
    case "message":
      hideTyping();
      if (data.from === "customer") appendTurn({ role: "user", message_id: data.message_id, content: data.text, at: data.at });
      else appendTurn({ role: "assistant", by: "human", name: data.name, message_id: data.message_id, content: data.text, at: data.at });
      break;
    case "typing":
      if (data.from === "customer") showTyping("The customer is typing…");
      break;
    case "joined":
      current.live = { mode: "human", lead: data.name, joined_at: data.at };
      eventTurn("joined", `${data.name} joined the conversation.`);
      showState();
      break;
    case "handed_back":
    case "resolved":
      current.live = { mode: "bot", lead: null, joined_at: null };
      eventTurn(event, `${data.name} ${event === "resolved" ? "marked the conversation as resolved" : "handed the conversation back to the bot"}.`);
      showState();
      break;
    case "gone":
      $("live-detail-status").textContent = "This conversation has expired or was deleted.";
      current.controller.abort();
      break;
    default:
      break;
  }
}

function showTyping(text) {
  $("live-typing").textContent = text;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(hideTyping, TYPING_SHOWN_MS);
}

function hideTyping() {
  clearTimeout(typingTimer);
  $("live-typing").textContent = "";
}

/** Join / hand back / resolve / reply: the server's answer, or its sentence in the status line. */
async function act(action, body = {}) {
  if (!selected) return null;
  if (!leadName()) {
    $("live-detail-status").textContent = "Enter your name first: the customer sees it.";
    $("live-lead-name").focus();
    return null;
  }
  const current = selected;
  try {
    const result = await api(path(current.sessionId, action), { method: "POST", body: { lead: leadName(), ...body } });
    if (result?.live) current.live = result.live;
    if (result?.live?.lead && result.live.lead !== leadName()) {
      // the server's spelling of the name (controls removed, spaces collapsed) is the one it compares with
      $("live-lead-name").value = result.live.lead;
      localStorage.setItem(NAME_KEY, result.live.lead);
    }
    if (current === selected) showState();
    loadList();
    return result ?? {};
  } catch (error) {
    $("live-detail-status").textContent = error.message;
    return null;
  }
}

$("live-lead-name").value = localStorage.getItem(NAME_KEY) || "";
$("live-lead-name").addEventListener("change", () => {
  localStorage.setItem(NAME_KEY, leadName());
  if (selected) showState();
});
$("live-join").addEventListener("click", async () => {
  localStorage.setItem(NAME_KEY, leadName());
  if (await act("join")) $("live-reply").focus();
});
$("live-hand-back").addEventListener("click", () => act("hand-back"));
$("live-resolve").addEventListener("click", () => act("resolve"));
$("live-composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("live-reply").value.trim();
  if (!text) return;
  $("live-send").disabled = true;
  const sent = await act("reply", { text });
  $("live-send").disabled = false;
  if (sent) {
    appendTurn({ role: "assistant", by: "human", name: leadName(), message_id: sent.message_id, content: sent.text, at: sent.at }); // as stored
    $("live-reply").value = "";
  }
  $("live-reply").focus();
});
$("live-reply").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("live-composer").requestSubmit();
  }
});
$("live-reply").addEventListener("input", () => {
  if (!selected || Date.now() - lastTypingSent < TYPING_SEND_MS) return;
  lastTypingSent = Date.now();
  api(path(selected.sessionId, "typing"), { method: "POST", body: { lead: leadName() } }).catch(() => {});
});
$("live-refresh").addEventListener("click", loadList);

registerTab("live", loadList);
