// Chat page entry: wires the page's elements to the Chat controller. `?embed=1` is the compact mode the
// widget shows in its iframe (a close button that tells the host page to hide the frame).
import { Chat } from "./chat.js";
import { setupEscalation } from "./escalate-dialog.js";

const $ = (id) => document.getElementById(id);
const embedded = new URLSearchParams(window.location.search).has("embed");
document.documentElement.classList.toggle("embed", embedded);

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

if (embedded) {
  $("close-widget").addEventListener("click", () => {
    window.parent.postMessage({ type: "support-chat:close" }, "*");
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("escalate-dialog").open) {
      window.parent.postMessage({ type: "support-chat:close" }, "*");
    }
  });
}

chat.restore().finally(() => {
  document.documentElement.dataset.ready = "true";
  if (!embedded) input.focus();
});
