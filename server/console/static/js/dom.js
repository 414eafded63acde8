// Small DOM and formatting helpers. Text always goes in as text nodes (never innerHTML), so
// whatever a handler or a context holds is shown, not executed.

/** h("a", {href: "#/x", class: "y", onclick: fn}, "text", childNode, [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const LABELS = {
  PENDING: "pending", IN_PROGRESS: "in progress", COMPLETE: "complete", ERROR: "error",
  CANCELLED: "cancelled", RESOLVED_MANUALLY: "resolved manually",
};
export const STATUSES = Object.keys(LABELS);
export const FINAL = new Set(["COMPLETE", "ERROR", "CANCELLED", "RESOLVED_MANUALLY"]);

export function badge(status) {
  const key = String(status || "").toLowerCase();
  return h("span", { class: `badge s-${key}`, dataset: { status: status } }, LABELS[status] || key);
}

export function ms(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "";
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 60000) return `${(value / 1000).toFixed(1)} s`;
  return `${Math.floor(value / 60000)} min ${Math.round((value % 60000) / 1000)} s`;
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function relative(iso, now = Date.now()) {
  if (!iso) return "";
  const seconds = (new Date(iso).getTime() - now) / 1000;
  if (seconds > 0) return `in ${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  return "due now";
}

/** "3 s ago", "2 min ago": how long before `now` an instant was. */
export function ago(iso, now = Date.now()) {
  if (!iso) return "";
  const s = (now - new Date(iso).getTime()) / 1000;
  if (Number.isNaN(s)) return "";
  if (s < 1) return "just now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** Local date and time with milliseconds: 2026-12-06 14:03:21.123. */
export function stamp(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return iso || "";
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} `
    + `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function json(value) {
  // Focusable: keyboard users can scroll a long document too.
  return h("pre", { class: "json", tabindex: "0" }, JSON.stringify(value, null, 2));
}

/** An error, in the server's words (with field details when it sent some). */
export function errorBox(error, prefix = "") {
  const details = error && error.details;
  let items = [];
  if (Array.isArray(details)) items = details.map((d) => `${d.field}: ${(d.messages || []).join("; ")}`);
  else if (details && typeof details === "object")
    items = Object.entries(details).map(([k, v]) => `${k}: ${[].concat(v).join("; ")}`);
  const message = (error && error.message) || String(error);
  return h("div", { class: "error-box", role: "alert" },
    prefix ? h("strong", {}, prefix, " ") : null, message,
    items.length ? h("ul", {}, items.map((item) => h("li", {}, item))) : null);
}

export function params(query) {
  return Object.fromEntries(new URLSearchParams(query || ""));
}

export function link(href, ...children) {
  return h("a", { href }, ...children);
}
