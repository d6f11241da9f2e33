// Chat page entry: wires the page's elements to the Chat controller. `?embed=1` is the compact mode the
// widget shows in its iframe: a close button (and Escape) tell the host page to hide the frame, by a message
// addressed to the host's origin only, which widget.js passes as `?parent=<origin>`.
import { Chat } from "./chat.js";
import { setupEscalation } from "./escalate-dialog.js";
import { showStarters } from "./starters.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
const embedded = params.has("embed");
document.documentElement.classList.toggle("embed", embedded);

/** The `parent` parameter when it is exactly an http(s) origin ("https://shop.example"), else null. */
function parentOrigin(value) {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === value ? url.origin : null;
  } catch {
    return null;
  }
}

const chat = new Chat({
  log: $("log"),
  messages: $("messages"),
  welcome: $("welcome"),
  announcer: $("announcer"),
  form: $("composer"),
  input: $("message"),
  send: $("send"),
  stop: $("stop"),
});

const input = $("message");

function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  if (chat.streaming || !input.value.trim()) return;
  const text = input.value;
  input.value = "";
  autosize();
  chat.ask(text);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
input.addEventListener("input", autosize);

$("stop").addEventListener("click", () => chat.stop());
$("new-conversation").addEventListener("click", async () => {
  await chat.reset();
  input.focus();
});

setupEscalation({
  opener: $("escalate"),
  dialog: $("escalate-dialog"),
  form: $("escalate-form"),
  email: $("escalate-email"),
  reason: $("escalate-reason"),
  error: $("escalate-error"),
  submit: $("escalate-submit"),
  cancel: $("escalate-cancel"),
  onSubmit: (values) => chat.escalate(values),
  afterClose: () => input.focus(),
});

const host = embedded && window.parent !== window ? parentOrigin(params.get("parent")) : null;
if (host) {
  const close = () => window.parent.postMessage({ type: "support-chat:close" }, host);
  $("close-widget").addEventListener("click", close);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("escalate-dialog").open) close();
  });
} else {
  $("close-widget").hidden = true; // nobody to tell: a close button would do nothing
}

// Starter questions in the welcome area: a click asks one, as if typed (frontend/js/starters.js).
showStarters($("starters"), (question) => {
  if (!chat.streaming) chat.ask(question);
  input.focus();
});

chat.restore().finally(() => {
  document.documentElement.dataset.ready = "true";
  if (!embedded) input.focus();
});
