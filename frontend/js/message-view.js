// The DOM of one exchange in the conversation: a user bubble, an answer bubble that fills in as events
// arrive (searching → sources → tokens → done), and notices (ticket opened). No network code here.
//
// An answer is `li.msg.bot` (classes `streaming` while it streams, `interrupted`, `refused`) holding
// `.bubble > .md` (the rendered Markdown of the answer text and nothing else), `.bubble > .interrupted-label`,
// `.bubble > .alert` (a failed request, with Retry), then outside the bubble `.model-notice` (the server's
// `error` notice), `.offer` (the buttons that accept or decline the server's offer of a person; class
// `offering` on the item while they show), `.sources` and `.msg-actions`.
import { renderMarkdown, safeUrl } from "./render.js";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const THUMB =
  "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 " +
  "7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z";

/** Thumb icon as SVG (emoji fonts are not everywhere); down is the same path turned over. */
function thumbIcon(down) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", THUMB);
  path.setAttribute("fill", "currentColor");
  if (down) path.setAttribute("transform", "rotate(180 12 12)");
  svg.append(path);
  return svg;
}

function button(label, className, onClick) {
  const node = el("button", `button ${className}`, label);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

/** A customer's message, shown as typed (text only, never parsed as Markdown or HTML). */
export function userBubble(text) {
  const item = el("li", "msg user");
  const bubble = el("div", "bubble", text);
  item.append(el("span", "visually-hidden", "You said: "), bubble);
  return item;
}

/** A notice in the conversation, e.g. the confirmation that a ticket was opened. */
export function noticeItem(title, detail, className = "notice") {
  const item = el("li", `msg ${className}`);
  const box = el("div", "notice-box");
  box.setAttribute("role", "status");
  box.append(el("strong", "", title));
  if (detail) box.append(el("span", "", ` ${detail}`));
  item.append(box);
  return item;
}

/**
 * One answer bubble. `handlers` = {onFeedback(messageId, rating, comment), onRegenerate(view),
 * onAcceptOffer(view), onDeclineOffer(view)}.
 * Text is re-rendered (Markdown, sanitised) at most once per animation frame while tokens stream in; at the
 * end `finish(…, {text})` replaces it with the server's final text.
 */
export class AnswerView {
  constructor(question, handlers) {
    this.question = question;
    this.handlers = handlers;
    this.text = "";
    this.sources = [];
    this.messageId = null;
    this.offered = null; // the reason of the server's `offer` event for this answer, until the answer is reset
    this.frame = 0;
    this.item = el("li", "msg bot");
    this.item.append(el("span", "visually-hidden", "Assistant said: "));
    this.bubble = el("div", "bubble");
    this.status = el("p", "status");
    this.body = el("div", "md");
    this.interruptedLabel = el("p", "interrupted-label", "(answer interrupted)");
    this.interruptedLabel.hidden = true;
    this.alert = el("div", "alert");
    this.alert.setAttribute("role", "alert");
    this.alert.hidden = true;
    this.bubble.append(this.status, this.body, this.interruptedLabel, this.alert);
    // A verified answer (done.verified): written by the support team and sent as written, without the model.
    this.verifiedBadge = el("p", "verified-badge", "Verified answer");
    this.verifiedBadge.title = "Written and checked by our support team";
    this.verifiedBadge.hidden = true;
    this.bubble.prepend(this.verifiedBadge);
    // The server's notice (e.g. the model failed mid-answer) is not part of the answer: it sits under the bubble.
    this.modelNotice = el("p", "model-notice");
    this.modelNotice.setAttribute("role", "status");
    this.modelNotice.hidden = true;
    this.offerBox = this.buildOffer();
    this.offerBox.hidden = true;
    this.sourcesBox = el("section", "sources");
    this.sourcesBox.hidden = true;
    this.actions = this.buildActions();
    this.actions.hidden = true;
    this.item.append(this.bubble, this.modelNotice, this.offerBox, this.sourcesBox, this.actions);
  }

  /** The answer's question "Would you like me to pass this conversation to a person?" as one click. */
  buildOffer() {
    const box = el("div", "offer");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Pass this conversation to a person?");
    this.acceptButton = button("Yes, connect me to a person", "primary small offer-accept", () =>
      this.handlers.onAcceptOffer?.(this),
    );
    this.declineButton = button("No, thanks", "ghost small offer-decline", () => this.handlers.onDeclineOffer?.(this));
    box.append(this.acceptButton, this.declineButton);
    return box;
  }

  buildActions() {
    const bar = el("div", "msg-actions");
    this.up = button("", "ghost icon-only thumb", () => this.rate("up"));
    this.up.append(thumbIcon(false));
    this.up.setAttribute("aria-label", "Helpful answer");
    this.down = button("", "ghost icon-only thumb", () => this.rate("down"));
    this.down.append(thumbIcon(true));
    this.down.setAttribute("aria-label", "Unhelpful answer");
    for (const thumb of [this.up, this.down]) thumb.setAttribute("aria-pressed", "false");
    this.regenerate = button("Regenerate", "ghost small regenerate", () => this.handlers.onRegenerate(this));
    this.feedbackNote = el("span", "feedback-note");
    this.feedbackNote.setAttribute("role", "status");
    this.commentForm = this.buildCommentForm();
    bar.append(this.up, this.down, this.regenerate, this.feedbackNote, this.commentForm);
    return bar;
  }

  buildCommentForm() {
    const form = el("form", "feedback-comment");
    form.hidden = true;
    const id = `comment-${Math.random().toString(36).slice(2)}`;
    const label = el("label", "visually-hidden", "What was wrong with this answer? (optional)");
    label.htmlFor = id;
    const input = el("input");
    input.id = id;
    input.type = "text";
    input.maxLength = 1000;
    input.placeholder = "What was wrong? (optional)";
    const send = el("button", "button ghost small", "Send");
    send.type = "submit";
    form.append(label, input, send);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!input.value.trim()) return;
      await this.rate("down", input.value.trim());
    });
    return form;
  }

  async rate(rating, comment) {
    if (!this.messageId) return;
    try {
      await this.handlers.onFeedback(this.messageId, rating, comment);
      this.up.setAttribute("aria-pressed", String(rating === "up"));
      this.down.setAttribute("aria-pressed", String(rating === "down"));
      this.feedbackNote.textContent = comment ? "Thanks, noted." : "Thanks for the feedback.";
      this.commentForm.hidden = rating !== "down" || Boolean(comment);
      if (rating === "down" && !comment) this.commentForm.querySelector("input").focus();
    } catch (error) {
      this.feedbackNote.textContent = `Feedback not sent: ${error.message}`;
    }
  }

  /** Back to the "searching" state for a new attempt (retry or regenerate). */
  reset() {
    cancelAnimationFrame(this.frame);
    this.text = "";
    this.sources = [];
    this.messageId = null;
    this.offered = null;
    this.showOffer(false);
    this.body.replaceChildren();
    this.sourcesBox.hidden = true;
    this.actions.hidden = true;
    this.setInterrupted(false);
    this.item.classList.remove("refused");
    this.setVerified(null);
    this.modelNotice.hidden = true;
    this.clearAlert();
    this.setSearching(true);
    this.item.classList.add("streaming");
    for (const thumb of [this.up, this.down]) thumb.setAttribute("aria-pressed", "false");
    this.feedbackNote.textContent = "";
    this.commentForm.hidden = true;
  }

  setSearching(on) {
    this.status.hidden = !on;
    this.status.replaceChildren();
    if (on) {
      this.status.append(el("span", "dots", ""), document.createTextNode("Searching the documentation…"));
    }
  }

  setSources(sources) {
    this.sources = Array.isArray(sources) ? sources : [];
    this.sourcesBox.replaceChildren();
    this.sourcesBox.hidden = this.sources.length === 0;
    if (!this.sources.length) return;
    const heading = el("h3", "sources-title", "Sources");
    const list = el("ol", "sources-list");
    for (const source of this.sources) {
      const entry = el("li");
      entry.value = Number(source.n) || list.children.length + 1;
      const url = safeUrl(source.url);
      const title = source.title || source.url || `Source ${source.n}`;
      const link = el(url ? "a" : "span", "source-title", title);
      if (url) {
        link.href = url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
      }
      entry.append(link);
      if (source.snippet) entry.append(el("p", "source-snippet", source.snippet));
      list.append(entry);
    }
    this.sourcesBox.append(heading, list);
    this.scheduleRender();
  }

  appendToken(text) {
    if (!text) return;
    if (!this.status.hidden) this.setSearching(false);
    this.text += text;
    this.scheduleRender();
  }

  scheduleRender() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      renderMarkdown(this.body, this.text, this.sources);
      this.item.dispatchEvent(new CustomEvent("grew", { bubbles: true }));
    });
  }

  /** Render now (end of stream or a restored message): no waiting for the next frame. */
  flush() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    renderMarkdown(this.body, this.text, this.sources);
  }

  /** The server's `error` notice (e.g. the model failed mid-answer), shown apart from the answer's text. */
  showModelNotice(message) {
    this.setSearching(false);
    this.modelNotice.textContent = message || "The assistant had a problem answering.";
    this.modelNotice.hidden = false;
  }

  /** The server offered a person (`offer` event): the buttons show once the answer is complete. */
  setOffer(reason) {
    this.offered = reason || "offered";
  }

  showOffer(on) {
    this.offerBox.hidden = !on;
    this.item.classList.toggle("offering", on);
  }

  /** Are the offer's buttons showing? */
  get offering() {
    return !this.offerBox.hidden;
  }

  /**
   * The answer is complete. `text`, when given (the `done` event's text, or a stored message), is the one
   * truth: it replaces whatever streamed. Without it (an older server) the streamed text stays. `offered` (a
   * reason) shows the buttons that accept the offer of a person; by default the `offer` event's reason.
   */
  finish(messageId, { text, interrupted = false, refused = false, offered = this.offered, verified = null } = {}) {
    this.setSearching(false);
    this.setVerified(verified);
    if (typeof text === "string") this.text = text;
    this.flush();
    this.messageId = messageId || null;
    this.item.classList.remove("streaming");
    this.item.classList.toggle("refused", Boolean(refused));
    this.setInterrupted(Boolean(interrupted));
    this.offered = offered || null;
    this.showOffer(Boolean(this.offered) && !interrupted);
    this.actions.hidden = false;
    this.up.disabled = this.down.disabled = !this.messageId;
  }

  /** `verified`: the verified answer's id (the badge shows) or null. */
  setVerified(verified) {
    this.verifiedBadge.hidden = !verified;
    this.item.classList.toggle("verified", Boolean(verified));
  }

  /** Stopped here (the Stop button): what streamed stays, marked incomplete, as the server stores it. */
  markStopped() {
    this.finish(this.messageId, { interrupted: true });
  }

  setInterrupted(on) {
    this.item.classList.toggle("interrupted", on);
    this.interruptedLabel.hidden = !on;
  }

  /**
   * An error in place with a Retry button (and "Edit message" for a refused one); for a 429 the button
   * counts down the server's wait first.
   */
  showError(error, onRetry, onEdit = null) {
    this.setSearching(false);
    this.flush();
    this.item.classList.remove("streaming");
    if (this.text) this.setInterrupted(true); // the stream broke off: what came is incomplete
    this.alert.replaceChildren();
    this.alert.hidden = false;
    const text = el("span", "alert-text", error.message);
    const retry = button("Retry", "small", () => {
      clearInterval(this.countdown);
      onRetry();
    });
    this.alert.append(text, retry);
    if (onEdit) this.alert.append(button("Edit message", "small", onEdit));
    if (error.kind === "rate" && error.retryAfter > 0) {
      let left = error.retryAfter;
      retry.disabled = true;
      const tick = () => {
        text.textContent = `${error.message} You can retry in ${left} s.`;
        retry.textContent = `Retry in ${left} s`;
        if (left-- <= 0) {
          clearInterval(this.countdown);
          text.textContent = error.message;
          retry.textContent = "Retry";
          retry.disabled = false;
        }
      };
      tick();
      this.countdown = setInterval(tick, 1000);
    }
    if (this.text) this.actions.hidden = false;
  }

  clearAlert() {
    clearInterval(this.countdown);
    this.alert.hidden = true;
    this.alert.replaceChildren();
  }

  /** What a screen reader hears once the answer is complete. */
  get plainText() {
    return this.body.textContent.trim();
  }
}
