// Console tab "Starter questions": the lead's list for the empty chat (one question a line; empty = suggest the
// most asked answered questions), and those suggestions with how many conversations asked each, to hide or show.
import { $, api, el, registerTab } from "./console-common.js";

async function loadStarters() {
  $("starters-status").textContent = "Loading…";
  let data;
  try {
    data = await api("/api/starters/suggestions");
  } catch (error) {
    $("starters-status").textContent = `Could not load the starter questions: ${error.message}`;
    return;
  }
  $("starters-input").value = (data.configured || []).join("\n");
  $("starters-status").textContent = data.configured?.length
    ? "The chat shows your list."
    : `No list set: the chat shows the ${data.shown} most asked of the suggestions below.`;
  const suggestions = data.suggestions || [];
  $("starters-suggestions").replaceChildren(...suggestions.map(suggestionItem));
  $("starters-suggestions-status").textContent = suggestions.length
    ? `Answered questions asked in at least ${data.min_sessions} conversations, most asked first.`
    : `No question was asked in ${data.min_sessions} conversations yet.`;
}

function suggestionItem(item) {
  const row = el("li", "feedback-card starter-suggestion");
  const meta = el("div", "turn-meta", `${item.sessions} conversations${item.hidden ? " · hidden" : ""}`);
  const button = el("button", "button ghost small", item.hidden ? "Show" : "Hide");
  button.type = "button";
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api(`/api/starters/suggestions/${encodeURIComponent(item.id)}`, {
        method: "PATCH",
        body: { hidden: !item.hidden },
      });
      await loadStarters();
    } catch (error) {
      button.disabled = false;
      $("starters-suggestions-status").textContent = `Could not change it: ${error.message}`;
    }
  });
  row.append(meta, el("p", "", item.question), button);
  return row;
}

async function saveStarters(event) {
  event.preventDefault();
  const questions = $("starters-input")
    .value.split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  $("starters-status").textContent = "Saving…";
  try {
    await api("/api/starters", { method: "PUT", body: { questions } });
  } catch (error) {
    $("starters-status").textContent = `Not saved: ${error.message}`;
    return;
  }
  await loadStarters();
  $("starters-status").textContent = questions.length ? "Saved: the chat shows your list." : "Cleared: the chat shows suggestions.";
}

$("starters-form").addEventListener("submit", saveStarters);
registerTab("starters", loadStarters);
