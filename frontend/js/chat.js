// The chat controller: sends messages, streams answers into their bubbles, keeps the session across
// reloads, escalates to a person (also when the customer accepts the bot's offer of one). Used by the chat page
// and (in an iframe, compact mode) by the widget.
import {
  ApiError,
  createTicket,
  deleteSession,
  getHistory,
  resumeAnswer,
  sendFeedback,
  stopAnswer,
  streamChat,
} from "./api.js";
import { LiveChat } from "./live.js";
import { AnswerView, noticeItem, userBubble } from "./message-view.js";

const SESSION_KEY = "support-chat.session-id";
/** The answer being written ({sessionId, answerId, question}): after a reload the page resumes it. */
const ANSWER_KEY = "support-chat.answer";
const RESUME_ATTEMPTS = 3; // a dropped connection is resumed (Last-Event-ID) this many times before it shows
/** What the offer's "Yes" button sends (with `escalate: true`), so the transcript reads as a reply. */
export const ACCEPT_OFFER_TEXT = "Yes, please connect me to a person";

export class Chat {
  /** `els`: {log, messages, welcome, announcer, form, input, send, stop} */
  constructor(els) {
    this.els = els;
    this.sessionId = readSession();
    this.controller = null;
    this.progress = null; // {answerId, lastId} of the answer streaming now
    this.latest = null;
    this.offerView = null; // the answer whose offer of a person is showing (it holds for the next message only)
    this.handlers = {
      onFeedback: (id, rating, comment) => sendFeedback(id, rating, comment),
      onRegenerate: (view) => this.ask(view.question, view),
      onAcceptOffer: (view) => this.acceptOffer(view),
      onDeclineOffer: (view) => this.declineOffer(view),
    };
    els.log.addEventListener("grew", () => this.followBottom());
    this.live = new LiveChat(this); // a support lead in this chat (frontend/js/live.js)
  }

  get streaming() {
    return this.controller !== null;
  }

  /** Reload-proof: show the conversation the server remembers for the stored session id. */
  async restore() {
    if (!this.sessionId) return;
    let history;
    try {
      history = await getHistory(this.sessionId);
    } catch (error) {
      if (error.status === 404) return this.forget();
      this.appendItem(noticeItem("Could not load the earlier conversation.", error.message, "notice error"));
      return;
    }
    let question = "";
    const messages = history?.messages || [];
    for (const [index, item] of messages.entries()) {
      const content = typeof item.content === "string" ? item.content : "";
      if (this.live.restoreItem(item)) continue; // a lead's reply or join / hand-back record
      if (item.role === "user") {
        question = content;
        this.appendItem(userBubble(content));
      } else if (item.role === "assistant") {
        const view = this.newAnswer(question);
        view.setSources(item.sources || []);
        // An offer of a person holds for the next message only: only the conversation's last reply shows it.
        const offered = index === messages.length - 1 ? item.offered : null;
        const { interrupted, refused, verified } = item;
        view.finish(item.message_id, { text: content, interrupted, refused, offered, verified });
        if (view.offering) this.offerView = view;
      }
      if (item.ticket_id) this.showTicket(item.ticket_id);
    }
    this.live.restored(history?.live);
    this.scrollToBottom();
    this.resumePending(messages);
  }

  /** An answer was being written when the page went away: show it again from its start, then the rest live. */
  resumePending(messages) {
    const pending = readJson(ANSWER_KEY);
    if (!pending || pending.sessionId !== this.sessionId) return forgetAnswer();
    const [before, last] = [messages.at(-2), messages.at(-1)];
    if (last?.role === "assistant" && before?.role === "user" && before.content === pending.question) {
      return forgetAnswer(); // it finished meanwhile: the history has shown it
    }
    if (last?.role !== "user") this.appendItem(userBubble(pending.question));
    const view = this.newAnswer(pending.question);
    const start = (signal) => resumeAnswer({ answerId: pending.answerId, sessionId: this.sessionId, signal });
    this.run(view, start, { question: pending.question, answerId: pending.answerId });
  }

  /** Send a question (or re-send it into an existing answer bubble, for Retry and Regenerate). */
  async ask(question, view = null, { escalate = false } = {}) {
    const text = question.trim();
    if (!text || this.streaming) return;
    this.dismissOffer(); // any message answers the offer: a "yes" the server accepts, anything else ends it
    if (!view) {
      this.appendItem(userBubble(text));
      view = this.newAnswer(text);
    }
    const start = (signal) => streamChat({ message: text, sessionId: this.sessionId, escalate, signal });
    await this.run(view, start, { question: text, escalate });
  }

  /**
   * Stream an answer into `view`: `start(signal)` yields its events. A connection that drops mid-answer is
   * resumed from the last event seen (the server keeps the answer running), RESUME_ATTEMPTS times in a row at
   * most: a resume that delivers an event gives a later drop all its attempts again.
   */
  async run(view, start, { question, escalate = false, answerId = null }) {
    const text = question;
    view.reset();
    this.scrollToBottom();
    this.controller = new AbortController();
    const signal = this.controller.signal;
    const progress = { answerId, lastId: null };
    this.progress = progress;
    this.setStreaming(true);
    try {
      let stream = start(signal);
      for (let failures = 0; ; ) {
        try {
          for await (const { event, data, id } of stream) {
            failures = 0;
            if (id) progress.lastId = id;
            if (event === "session" && data.answer_id) {
              progress.answerId = data.answer_id;
              writeJson(ANSWER_KEY, { sessionId: data.session_id, answerId: data.answer_id, question: text });
            }
            if (event === "done") forgetAnswer();
            this.onEvent(event, data, view);
          }
          break;
        } catch (error) {
          const dropped = error instanceof ApiError && (error.kind === "cut" || error.kind === "network");
          failures += 1;
          if (!dropped || !progress.answerId || failures > RESUME_ATTEMPTS || signal.aborted) throw error;
          await new Promise((resolve) => setTimeout(resolve, 500 * failures));
          if (signal.aborted) throw new DOMException("Stopped", "AbortError");
          const { answerId: id, lastId } = progress;
          stream = resumeAnswer({ answerId: id, sessionId: this.sessionId, lastEventId: lastId, signal });
        }
      }
      if (view.offering) this.offerView = view;
      if (view.live) return this.announce(this.live.sentNotice);
      const offerHint = view.offering ? " Below it, a button connects you to a person." : "";
      this.announce(view.plainText ? `Answer: ${view.plainText}${offerHint}` : "The answer is empty.");
    } catch (error) {
      if (error.name === "AbortError") {
        view.markStopped();
        this.announce("Stopped.");
      } else {
        const shown = error instanceof ApiError ? error : new ApiError("network", error.message || String(error));
        const onEdit = shown.kind === "invalid" && this.els.input ? () => this.editAgain(text, view) : null;
        view.showError(shown, () => this.ask(text, view, { escalate }), onEdit);
        this.announce(`Error: ${shown.message}`);
        this.scrollToBottom();
      }
    } finally {
      this.controller = null;
      this.progress = null;
      this.setStreaming(false);
    }
  }

  onEvent(event, data, view) {
    switch (event) {
      case "session":
        if (data.session_id) this.remember(data.session_id);
        break;
      case "sources":
        view.setSources(data.sources);
        break;
      case "token":
        view.appendToken(data.text ?? "");
        break;
      case "offer": // the reply asks whether to pass the conversation to a person: a button to accept
        view.setOffer(data.reason);
        break;
      case "escalated":
        this.showTicket(data.ticket_id, data.reason);
        this.live.watch(); // a person may join this chat
        break;
      case "error":
        view.showModelNotice(data.message);
        break;
      case "done": // its text, when present, replaces what streamed (the server may have corrected it)
        if (data.live) return this.live.absorb(view); // a support lead has the conversation: no bot reply
        view.finish(data.message_id, {
          text: data.text,
          interrupted: data.interrupted,
          refused: data.refused,
          verified: data.verified, // a verified answer's id: the bubble says so
        });
        break;
      default:
        break;
    }
  }

  /** A refused message (e.g. too long) goes back into the message box, and its bubbles go away. */
  editAgain(text, view) {
    if (this.offerView === view) this.offerView = null;
    view.item.previousElementSibling?.remove();
    view.item.remove();
    if (this.latest === view) this.latest = null;
    if (!this.els.messages.children.length) this.els.welcome.hidden = false;
    this.els.input.value = text;
    this.els.input.dispatchEvent(new Event("input"));
    this.els.input.focus();
  }

  /**
   * "Yes, connect me to a person": the reply to the offer, sent as a message with `escalate` like the dialog's
   * first message, so the transcript reads naturally; the `escalated` event then shows the ticket.
   */
  async acceptOffer(view) {
    if (this.streaming || view !== this.offerView) return;
    this.els.input?.focus(); // the button goes away: keep the keyboard in the conversation
    await this.ask(ACCEPT_OFFER_TEXT, null, { escalate: true });
  }

  /** "No, thanks": the buttons go away; nothing is sent (the offer lapses with the next message anyway). */
  declineOffer(view) {
    if (view !== this.offerView) return;
    this.dismissOffer();
    this.els.input?.focus();
  }

  dismissOffer() {
    this.offerView?.showOffer(false);
    this.offerView = null;
  }

  /** Stop the answer here and on the server (leaving alone would not stop it: it stays resumable). */
  stop() {
    const answerId = this.progress?.answerId;
    if (answerId && this.sessionId) stopAnswer(answerId, this.sessionId).catch(() => {});
    forgetAnswer();
    this.controller?.abort();
  }

  /** "New conversation": stop, forget the session here and on the server, clear the page. */
  async reset() {
    this.stop();
    const old = this.sessionId;
    this.live.stop();
    this.forget();
    this.els.messages.replaceChildren();
    this.els.welcome.hidden = false;
    this.latest = null;
    this.offerView = null;
    this.announce("New conversation started.");
    if (old) deleteSession(old).catch(() => {});
  }

  /**
   * Open a ticket for this conversation. With no conversation yet, the reason is sent as the first message
   * with `escalate` (so the ticket has a transcript); the ticket call then adds the email to that same
   * ticket (the server keeps one open ticket per session).
   */
  async escalate({ email, reason }) {
    if (!this.sessionId) {
      if (this.streaming) throw new ApiError("busy", "Wait for the current answer to finish.");
      await this.ask(reason || "I would like to talk to a person.", null, { escalate: true });
      if (!this.sessionId) throw new ApiError("network", "Could not start the conversation.");
    }
    const ticket = await createTicket({ sessionId: this.sessionId, reason, contactEmail: email });
    this.dismissOffer(); // a person is on the way: nothing left to offer
    this.showTicket(ticket.ticket_id, reason, email);
    this.live.watch(); // a person may join this chat
    return ticket;
  }

  showTicket(ticketId, reason, email) {
    if (!ticketId) return;
    const existing = [...this.els.messages.querySelectorAll(".msg.ticket")].find((n) => n.dataset.ticket === ticketId);
    if (existing) return;
    const detail = email
      ? `A person from our team will reply to ${email}. Quote this number if you contact us.`
      : "A person from our team will follow up. Quote this number if you contact us.";
    const item = noticeItem(`Ticket ${ticketId} opened.`, detail, "notice ticket");
    item.dataset.ticket = ticketId;
    this.appendItem(item);
    this.announce(`Ticket ${ticketId} opened. ${detail}`);
  }

  newAnswer(question) {
    const view = new AnswerView(question, this.handlers);
    this.latest?.item.classList.remove("latest");
    view.item.classList.add("latest");
    this.latest = view;
    this.appendItem(view.item);
    return view;
  }

  appendItem(item) {
    this.els.welcome.hidden = true;
    this.els.messages.append(item);
    this.followBottom();
  }

  setStreaming(on) {
    const { send, stop, input } = this.els;
    const stopHadFocus = document.activeElement === stop;
    send.hidden = on;
    stop.hidden = !on;
    this.els.log.setAttribute("aria-busy", String(on));
    if (on && document.activeElement === send) stop.focus();
    if (!on && stopHadFocus) input.focus();
  }

  /** Screen readers hear complete answers once (the live region is not updated per token). */
  announce(text) {
    const region = this.els.announcer;
    region.textContent = "";
    setTimeout(() => {
      region.textContent = text.length > 1500 ? `${text.slice(0, 1500)}…` : text;
    }, 50);
  }

  followBottom() {
    const log = this.els.log;
    if (log.scrollHeight - log.scrollTop - log.clientHeight < 120) this.scrollToBottom();
  }

  scrollToBottom() {
    this.els.log.scrollTop = this.els.log.scrollHeight;
  }

  remember(sessionId) {
    this.sessionId = sessionId;
    try {
      localStorage.setItem(SESSION_KEY, sessionId);
    } catch {
      /* storage blocked (private mode, third-party iframe): the session lasts for this page only */
    }
  }

  forget() {
    this.sessionId = null;
    try {
      localStorage.removeItem(SESSION_KEY);
    } catch {
      /* storage blocked */
    }
  }
}

function readJson(key) {
  try {
    return JSON.parse(localStorage.getItem(key) || "null");
  } catch {
    return null;
  }
}

function writeJson(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* storage blocked: a reload then shows the answer once it is stored */
  }
}

function forgetAnswer() {
  try {
    localStorage.removeItem(ANSWER_KEY);
  } catch {
    /* storage blocked */
  }
}

function readSession() {
  try {
    return localStorage.getItem(SESSION_KEY);
  } catch {
    return null;
  }
}
