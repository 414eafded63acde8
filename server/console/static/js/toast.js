// Toasts: every command says how it went (its result, or the server's error code and
// message), for a few seconds, without moving the page. role=status/alert for screen readers.
import { h } from "./dom.js";

function stack() {
  let el = document.getElementById("toasts");
  if (!el) {
    el = h("div", { id: "toasts", class: "toasts" });
    document.body.append(el);
  }
  return el;
}

/** Show `message`; `kind` is "ok", "info" or "error". Errors stay until dismissed. */
export function toast(message, kind = "ok") {
  const close = h("button", { class: "small toast-close", type: "button", "aria-label": "Dismiss" }, "×");
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status",
                        dataset: { kind } }, h("span", {}, message), close);
  close.addEventListener("click", () => el.remove());
  stack().append(el);
  if (kind !== "error") setTimeout(() => el.remove(), 8000);
  return el;
}

/** An ApiError as "CODE: message". */
export function describe(err) {
  return err && err.code ? `${err.code}: ${err.message}` : String((err && err.message) || err);
}
