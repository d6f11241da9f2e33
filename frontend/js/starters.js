// Starter questions on the empty chat (GET /api/starters): the lead's list, or the questions asked most. Each is a
// button in the welcome area; a click asks it. They go away with the welcome once the conversation starts, and
// come back with it on "New conversation". Optional: without an answer from the server nothing is shown.

/** Fill `container` (inside #welcome) with one button per starter question; `ask(text)` sends one. */
export async function showStarters(container, ask) {
  let questions = [];
  try {
    const response = await fetch("/api/starters", { headers: { Accept: "application/json" } });
    if (response.ok) questions = (await response.json())?.questions || [];
  } catch {
    return; // offline or refused: the chat works without them
  }
  questions = questions.filter((q) => typeof q === "string" && q.trim());
  if (!questions.length) return;
  const title = document.createElement("p");
  title.className = "starters-title";
  title.id = "starters-title";
  title.textContent = "Try asking:";
  const list = document.createElement("ul");
  list.className = "starters-list";
  list.setAttribute("aria-labelledby", title.id);
  for (const question of questions) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button ghost starter";
    button.textContent = question; // text, never markup
    button.addEventListener("click", () => ask(question));
    const item = document.createElement("li");
    item.append(button);
    list.append(item);
  }
  container.replaceChildren(title, list);
  container.hidden = false;
}
