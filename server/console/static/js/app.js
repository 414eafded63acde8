// The console's shell: hash routing (#/tasks/ID ...), the token state, and the rule that every
// failure is shown in words: in the page, or in the banner, never as a blank page.
import { AuthError, onAuthFailure, token } from "./api.js";
import { clear, errorBox, h, params } from "./dom.js";
import * as analytics from "./views/analytics.js";
import * as catalogue from "./views/catalogue.js";
import * as schedules from "./views/schedules.js";
import * as taskPage from "./views/task.js";
import * as taskList from "./views/tasks.js";
import * as tokenPage from "./views/token.js";

const view = document.getElementById("view");
const banner = document.getElementById("banner");
let cleanup = null;
let generation = 0;

const ROUTES = [
  [/^\/handlers\/([^/]+)\/([^/]+)$/, catalogue.renderHandler, "handlers"],
  [/^\/handlers$/, catalogue.renderCatalogue, "handlers"],
  [/^\/tasks\/([^/]+)$/, taskPage.render, "tasks"],
  [/^\/tasks$/, taskList.render, "tasks"],
  [/^\/analytics$/, analytics.render, "analytics"],
  [/^\/schedules$/, schedules.render, "schedules"],
  [/^\/token$/, tokenPage.render, "token"],
];

export function showBanner(message, kind = "error") {
  if (!message) { banner.hidden = true; return; }
  banner.className = `banner ${kind === "info" ? "info" : ""}`;
  banner.textContent = message;
  banner.hidden = false;
}

function updateTokenState() {
  const el = document.getElementById("token-state");
  el.textContent = token.get() ? "Token: set" : "Token: none";
  el.title = token.get() ? "A token is stored for this browser tab" : "No token: paste one";
}

export function navigate(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

async function route() {
  const mine = ++generation;
  if (cleanup) { try { cleanup(); } catch (err) { console.warn(err); } cleanup = null; }
  const raw = location.hash.replace(/^#/, "") || "/handlers";
  const [path, query] = raw.split("?");
  const match = ROUTES.find(([pattern]) => pattern.test(path));
  document.querySelectorAll("[data-nav]").forEach((a) =>
    a.classList.toggle("active", !!match && a.dataset.nav === match[2]));
  updateTokenState();
  showBanner(null);
  if (!match) {
    clear(view, h("h1", {}, "Not found"), h("p", {}, "Nothing lives at ", h("code", {}, path), "."));
    return;
  }
  const [pattern, render] = match;
  const args = pattern.exec(path).slice(1).map(decodeURIComponent);
  clear(view, h("p", { class: "muted" }, "Loading…"));
  const ctx = {
    params: params(query),
    hash: raw,
    current: () => mine === generation,
    onLeave: (fn) => { if (mine === generation) cleanup = fn; else fn(); },
    navigate,
    showBanner,
  };
  try {
    await render(view, ctx, ...args);
  } catch (err) {
    if (mine !== generation || err instanceof AuthError) return;  // auth: handled below
    clear(view, errorBox(err, "Could not load this page:"));
  }
}

onAuthFailure((err) => {
  if (location.hash.startsWith("#/token")) return;
  token.set("");
  const back = encodeURIComponent(location.hash.replace(/^#/, "") || "/handlers");
  sessionStorage.setItem("tasker.authMessage", err.message);
  navigate(`#/token?expired=1&back=${back}`);
});

window.addEventListener("error", (event) => showBanner(`Something went wrong: ${event.message}`));
window.addEventListener("unhandledrejection", (event) => {
  const reason = event.reason;
  if (reason instanceof AuthError) return;
  showBanner(`Something went wrong: ${(reason && reason.message) || reason}`);
});
window.addEventListener("hashchange", route);
document.getElementById("booting")?.remove();
route();
