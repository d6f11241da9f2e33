// A person in the chat (live takeover): once the conversation is escalated — or on load when a support lead
// holds it — the page listens to GET /chat/live (Server-Sent Events read with sse.js) and shows "<name> joined",
// the lead's messages as bubbles marked as a person's, their typing, and "handed back to the bot" / "resolved".
// While a lead holds the conversation, /chat stores the customer's message for the lead and answers nothing
// (`done.live`): the empty answer bubble goes away. Reconnects resume after the last event id seen.
import { readEvents } from "./sse.js";
import { noticeItem } from "./message-view.js";

const TYPING_SHOWN_MS = 6000; // a typing indicator goes away after this unless refreshed
const TYPING_SEND_MS = 2000; // the server keeps at most one typing event per side this often anyway
const RETRY_MAX_MS = 15000;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A support lead's message: plain text (never parsed), marked with their name as a person's. */
export function leadBubble(text, name, messageId) {
  const item = el("li", "msg lead");
  if (messageId) item.dataset.messageId = messageId;
  const who = name || "Support team";
  item.append(el("span", "visually-hidden", `${who} from the support team said: `));
  const label = el("p", "lead-name");
  label.setAttribute("aria-hidden", "true");
  label.append(el("strong", "", who), document.createTextNode(" · support team"));
  item.append(label, el("div", "bubble", text));
  return item;
}

const NOTICES = {
  joined: (name) => [`${name} joined the conversation.`, "You are now chatting with a person from our support team."],
  handed_back: (name) => [`${name} handed the conversation back to the bot.`, "Ask away: the bot answers again."],
  resolved: (name) => [`${name} marked the conversation as resolved.`, "You can keep asking the bot any time."],
};

function liveNotice(kind, name, messageId) {
  const [title, detail] = NOTICES[kind](name || "Our support team");
  const item = noticeItem(title, detail, `notice live ${kind.replace("_", "-")}`);
  if (messageId) item.dataset.messageId = messageId;
  return item;
}

export class LiveChat {
  /** `chat`: the Chat controller (its sessionId, appendItem, announce, els). */
  constructor(chat) {
    this.chat = chat;
    this.cursor = null;
    this.controller = null;
    this.mode = "bot";
    this.lead = null;
    this.typingItem = null;
    this.typingTimer = 0;
    this.lastTypingSent = 0;
    chat.els.input?.addEventListener("input", () => this.customerTyping());
  }

  get human() {
    return this.mode === "human";
  }

  /** A stored turn of the conversation that is the lead's (a reply, or a join / hand-back record): shown as such. */
  restoreItem(item) {
    if (item.role === "event" && NOTICES[item.event]) {
      this.chat.appendItem(liveNotice(item.event, item.name, item.message_id));
      return true;
    }
    if (item.role === "assistant" && item.by === "human") {
      this.chat.appendItem(leadBubble(item.content, item.name, item.message_id));
      return true;
    }
    return false;
  }

  /** After a reload: listen when a lead holds the conversation or an open ticket waits for one; keep the cursor
   * either way, so listening later (after an escalation) starts where the reload left off. */
  restored(live) {
    this.mode = live?.mode === "human" ? "human" : "bot";
    this.lead = live?.lead || null;
    if (live?.cursor) this.cursor = live.cursor;
    if (this.human || live?.waiting) this.watch();
  }

  /** Start listening (once), after `cursor` when given: the conversation is escalated or held. */
  watch(cursor = null) {
    if (cursor && !this.cursor) this.cursor = cursor;
    if (this.controller || !this.chat.sessionId) return;
    this.listen();
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
    this.cursor = null;
    this.mode = "bot";
    this.lead = null;
    this.hideTyping();
  }

  async listen() {
    const controller = new AbortController();
    this.controller = controller;
    const sessionId = this.chat.sessionId;
    let wait = 1000;
    while (!controller.signal.aborted && this.chat.sessionId === sessionId) {
      try {
        const query = new URLSearchParams({ session_id: sessionId, ...(this.cursor ? { after: this.cursor } : {}) });
        const response = await fetch(`/chat/live?${query}`, {
          headers: { Accept: "text/event-stream" },
          signal: controller.signal,
        });
        if (response.status === 404) break; // the conversation expired or was erased: nobody will come
        if (response.ok) {
          wait = 1000;
          for await (const { event, data } of readEvents(response, controller.signal)) {
            if (this.onEvent(event, JSON.parse(data)) === "stop") return this.finish(controller);
          }
        }
      } catch (error) {
        if (controller.signal.aborted) break;
      }
      await new Promise((resolve) => setTimeout(resolve, wait)); // the stream dropped: resume after the last id
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    }
    this.finish(controller);
  }

  finish(controller) {
    if (this.controller === controller) this.controller = null;
  }

  /** One live event; "stop" ends the listening (the session is gone, or the ticket resolved). */
  onEvent(event, data) {
    if (data.event_id) this.cursor = data.event_id;
    if (data.message_id && this.shown(data.message_id)) return null; // already in the restored history
    switch (event) {
      case "joined":
        this.mode = "human";
        this.lead = data.name;
        this.notice("joined", data);
        break;
      case "message":
        if (data.from !== "lead") break; // the customer's own message is already on the page
        this.hideTyping();
        this.chat.appendItem(leadBubble(data.text, data.name, data.message_id));
        this.chat.announce(`${data.name || "Support"} said: ${data.text}`);
        break;
      case "typing":
        if (data.from === "lead") this.showTyping(data.name);
        break;
      case "handed_back":
        this.mode = "bot";
        this.notice("handed_back", data);
        break;
      case "resolved":
        this.mode = "bot";
        this.notice("resolved", data);
        return "stop";
      case "gone":
        return "stop";
      default:
        break;
    }
    return null;
  }

  notice(kind, data) {
    this.hideTyping();
    const item = liveNotice(kind, data.name, data.message_id);
    this.chat.appendItem(item);
    this.chat.announce(item.textContent);
  }

  shown(messageId) {
    return [...this.chat.els.messages.querySelectorAll("[data-message-id]")].some(
      (node) => node.dataset.messageId === messageId,
    );
  }

  showTyping(name) {
    if (!this.typingItem) {
      this.typingItem = el("li", "msg typing-indicator");
      this.typingItem.setAttribute("aria-hidden", "true"); // screen readers hear the message, not every keystroke
    }
    this.typingItem.replaceChildren(el("span", "dots", ""), document.createTextNode(`${name || "Support"} is typing…`));
    this.chat.els.messages.append(this.typingItem); // always last
    this.chat.followBottom();
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.hideTyping(), TYPING_SHOWN_MS);
  }

  hideTyping() {
    clearTimeout(this.typingTimer);
    this.typingItem?.remove();
  }

  /** The customer types while a lead holds the conversation: the lead sees it (at most every TYPING_SEND_MS). */
  customerTyping() {
    if (!this.human || !this.chat.sessionId || Date.now() - this.lastTypingSent < TYPING_SEND_MS) return;
    this.lastTypingSent = Date.now();
    fetch("/chat/live/typing", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session_id: this.chat.sessionId }),
    }).catch(() => {});
  }

  /** /chat's `done.live`: the message went to the lead, nothing was answered; the empty answer bubble goes. */
  absorb(view) {
    view.live = true;
    view.item.remove();
    if (this.chat.latest === view) this.chat.latest = null;
    this.mode = "human";
    this.watch();
  }

  /** What a screen reader hears once the message went to the lead. */
  get sentNotice() {
    return `Sent to ${this.lead || "the support team"}.`;
  }
}
