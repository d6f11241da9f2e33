// The chat API as the page uses it. Every failure becomes an ApiError with a message a person can read,
// so the UI can always show something in place (never a silent failure).
import { readEvents } from "./sse.js";

export class ApiError extends Error {
  /** kind: "network" | "busy" (409) | "rate" (429) | "invalid" (4xx) | "server" (5xx) | "cut" (stream ended early) */
  constructor(kind, message, { status = 0, retryAfter = 0 } = {}) {
    super(message);
    this.kind = kind;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function detailOf(response) {
  try {
    const body = await response.json();
    const detail = body?.detail ?? body?.message;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    return detail ? JSON.stringify(detail) : "";
  } catch {
    return "";
  }
}

/** Turn a non-2xx response into an ApiError whose message says what to do. */
async function errorFromResponse(response) {
  const detail = await detailOf(response);
  const status = response.status;
  if (status === 429) {
    const retryAfter = Math.max(1, Math.ceil(Number(response.headers.get("Retry-After")) || 5));
    return new ApiError("rate", detail || "Too many messages.", { status, retryAfter });
  }
  if (status === 409) {
    return new ApiError("busy", "An answer is still being written in this conversation. Wait a moment, then retry.", {
      status,
    });
  }
  if (status >= 500) return new ApiError("server", detail || `The server had a problem (${status}).`, { status });
  return new ApiError("invalid", detail || `The request was refused (${status}).`, { status });
}

/** JSON by default; `blob: true` for a file (the console's CSV download). */
async function request(url, { method = "GET", body, headers = {}, signal, blob = false } = {}) {
  let response;
  try {
    response = await fetch(url, {
      method,
      signal,
      headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("network", "Could not reach the server. Check your connection.");
  }
  if (!response.ok) throw await errorFromResponse(response);
  if (blob) return response.blob();
  return response.status === 204 ? null : response.json().catch(() => null);
}

/**
 * POST /chat and yield its events ({event, data, id} with data parsed from JSON) as they arrive.
 * Throws ApiError before the first event for HTTP errors, and kind "cut" if the stream ends without `done`.
 */
export async function* streamChat({ message, sessionId, escalate = false, signal }) {
  const body = JSON.stringify({ message, session_id: sessionId || null, ...(escalate ? { escalate: true } : {}) });
  yield* streamFrom("/chat", { method: "POST", body, headers: { "Content-Type": "application/json" } }, signal);
}

/**
 * GET /chat/stream/{answerId}: an answer's events after `lastEventId` (all of them without it), then the rest
 * live, as streamChat yields them. 404 (ApiError "invalid") once the answer is gone.
 */
export async function* resumeAnswer({ answerId, sessionId, lastEventId, signal }) {
  const url = `/chat/stream/${encodeURIComponent(answerId)}?session_id=${encodeURIComponent(sessionId)}`;
  yield* streamFrom(url, { headers: lastEventId ? { "Last-Event-ID": lastEventId } : {} }, signal);
}

/** Stop an answer on the server (wherever it runs); it ends stored as interrupted. */
export const stopAnswer = (answerId, sessionId) =>
  request(`/chat/stream/${encodeURIComponent(answerId)}/stop?session_id=${encodeURIComponent(sessionId)}`, {
    method: "POST",
  });

async function* streamFrom(url, { method = "GET", body, headers = {} }, signal) {
  let response;
  try {
    response = await fetch(url, { method, signal, body, headers: { Accept: "text/event-stream", ...headers } });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("network", "Could not reach the server. Check your connection.");
  }
  if (!response.ok) throw await errorFromResponse(response);
  let finished = false;
  try {
    for await (const { event, data, id } of readEvents(response, signal)) {
      let parsed;
      try {
        parsed = JSON.parse(data);
      } catch {
        parsed = { text: data };
      }
      yield { event, data: parsed, id };
      if (event === "done") finished = true;
    }
  } catch (error) {
    if (signal?.aborted || error.name === "AbortError") throw error;
    throw new ApiError("cut", "The connection dropped before the answer was complete.");
  }
  if (signal?.aborted) throw new DOMException("Stopped", "AbortError");
  if (!finished) throw new ApiError("cut", "The connection dropped before the answer was complete.");
}

export const getHistory = (sessionId) => request(`/api/sessions/${encodeURIComponent(sessionId)}/history`);

export const deleteSession = (sessionId) =>
  request(`/api/sessions/${encodeURIComponent(sessionId)}`, { method: "DELETE" });

export const createTicket = ({ sessionId, reason, contactEmail }) =>
  request("/api/tickets", {
    method: "POST",
    body: {
      session_id: sessionId,
      ...(reason ? { reason } : {}),
      ...(contactEmail ? { contact_email: contactEmail } : {}),
    },
  });

export const sendFeedback = (messageId, rating, comment) =>
  request(`/api/messages/${encodeURIComponent(messageId)}/feedback`, {
    method: "POST",
    body: { rating, ...(comment ? { comment } : {}) },
  });

/** Support-lead API: every call carries the admin token. */
export const leadRequest = (token, url, options = {}) =>
  request(url, { ...options, headers: { Authorization: `Bearer ${token}`, ...(options.headers || {}) } });
