// Shared by the pages: the API key (typed in, kept in this tab's sessionStorage, sent only in
// the Authorization header), API calls, the event-stream reader, and number formatting.

const KEY = "loan-auction.api-key";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export class Unauthorized extends Error {}

// The header's key form: shows the form when there is no key, "Forget key" when there is one.
export function keyBar(onKey) {
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  const forget = document.getElementById("key-forget");
  const state = document.getElementById("key-state");
  const show = () => {
    const has = Boolean(apiKey());
    form.hidden = has;
    forget.hidden = !has;
    state.textContent = has ? "key set for this tab" : "";
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY, value);
    input.value = "";
    show();
    onKey();
  });
  forget.addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    show();
    onKey();
  });
  show();
  return {
    rejected(message) {
      sessionStorage.removeItem(KEY);
      show();
      state.textContent = message;
    },
  };
}

// Server time minus local time, from the Date header of the last answer (1 s resolution).
let clockSkewMs = 0;
export function serverNow() {
  return Date.now() + clockSkewMs;
}

function noteDate(response) {
  const date = response.headers.get("Date");
  if (date) clockSkewMs = Date.parse(date) + 500 - Date.now();
}

export async function api(path) {
  const key = apiKey();
  if (!key) throw new Unauthorized("no key");
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${key}`, Accept: "application/json" },
    cache: "no-store",
  });
  noteDate(response);
  if (response.status === 401) throw new Unauthorized("the key was not accepted");
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.detail || `${response.status} ${response.statusText}`);
  }
  return response.json();
}

// Reads a text/event-stream with fetch (so the key travels in a header, never in the URL).
// Calls onEvent({id, type, data}) per event; resolves when the server ends the stream.
export async function readStream(path, lastEventId, onEvent, signal) {
  const key = apiKey();
  if (!key) throw new Unauthorized("no key");
  const headers = { Authorization: `Bearer ${key}`, Accept: "text/event-stream" };
  if (lastEventId !== null) headers["Last-Event-ID"] = String(lastEventId);
  const response = await fetch(path, { headers, cache: "no-store", signal });
  noteDate(response);
  if (response.status === 401) throw new Unauthorized("the key was not accepted");
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.detail || `${response.status} ${response.statusText}`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = parseBlock(block);
      if (event) onEvent(event);
    }
  }
}

function parseBlock(block) {
  let id = null;
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = Number(value);
    else if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  return { id, type, data: JSON.parse(data.join("\n")) };
}

export function money(minor, currency) {
  const text = (minor / 100).toLocaleString("en-US", {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  });
  return currency ? `${text} ${currency}` : text;
}

export function rate(bps) {
  return bps === null || bps === undefined ? "–" : `${(bps / 100).toFixed(2)} %`;
}

export function countdown(closesAt) {
  const left = Math.max(0, Date.parse(closesAt) - serverNow());
  const s = Math.floor(left / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, "0");
  if (d > 0) return `${d}d ${pad(h)}:${pad(m)}:${pad(s % 60)}`;
  return `${pad(h)}:${pad(m)}:${pad(s % 60)}`;
}

export function shortId(id) {
  return id ? id.slice(0, 8) : "";
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}
