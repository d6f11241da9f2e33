// What every console tab shares: the lead's token (sessionStorage: this browser tab only), the API bound to it,
// small DOM helpers, and the tab registry. A tab is a module that calls `registerTab(name, load)`; its button
// in console.html is `<button class="tab" data-tab="name">` and its view is `<section id="name-view">`.
import { leadRequest } from "./api.js";

const TOKEN_KEY = "support-console.token";
export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// The API's times are ISO 8601 strings; its lists come newest first.
export const formatTime = (value) => {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
};

let token = sessionStorage.getItem(TOKEN_KEY);
const refusedListeners = [];

export const currentToken = () => token;

export function setToken(value) {
  token = value;
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Called when the server refuses the token (401/403): the console signs out. */
export const onTokenRefused = (listener) => refusedListeners.push(listener);

/** For requests made without `api` (a stream read with fetch): a 401/403 signs out the same way. */
export function tokenRefused() {
  for (const listener of refusedListeners) listener();
}

export const api = (url, options) =>
  leadRequest(token, url, options).catch((error) => {
    if (error.status === 401 || error.status === 403) tokenRefused();
    throw error;
  });

const tabs = new Map();

/** A tab's `load()` runs each time the lead opens it. */
export const registerTab = (name, load) => tabs.set(name, load);

export function showTab(name) {
  for (const button of document.querySelectorAll("nav.tabs [data-tab]")) {
    const tab = button.dataset.tab;
    button.setAttribute("aria-pressed", String(tab === name));
    $(`${tab}-view`).hidden = tab !== name;
  }
  tabs.get(name)?.();
}

export function wireTabs() {
  for (const button of document.querySelectorAll("nav.tabs [data-tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
}
