// The live step table of a task page: status, attempts, durations, next attempt, blocked
// reason, last error and results, with per-step retry / resolve / cancel, and for a step
// waiting for a signal an Approve button and a form to send any payload.
import { badge, clear, errorBox, h, json, ms, relative } from "../dom.js";

const COLUMNS = ["step", "status", "attempts", "duration", "next attempt", "blocked because",
                 "last error", "results", ""];

export function stepTable({ onCommand }) {
  const body = h("tbody");
  const element = h("table", { class: "data", id: "steps" },
    h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", {}, c)))), body);
  // Kept across re-renders so a half-typed resolution or an opened result survives an event.
  const forms = new Map();
  const opened = new Set();
  let task = null;

  function update(next) {
    task = next;
    clear(body, task.steps.map(row));
    tick();
  }

  function row(step) {
    const reason = step.blockedReason;
    return h("tr", { dataset: { step: step.name, status: step.status } },
      h("td", {}, h("strong", {}, step.name)),
      h("td", {}, step.skipped ? h("span", { class: "badge s-skipped", dataset: { status: "SKIPPED" },
        title: "run_if was false: completed without running" }, "skipped") : badge(step.status), itemProgress(step)),
      h("td", { class: "num" }, `${step.attempts} / ${Math.max(step.retryLimit, 1)}`),
      h("td", { class: "num", dataset: { live: "duration" } }),
      h("td", { dataset: { live: "next" } }),
      h("td", {}, reason ? reason.message : ""),
      h("td", {}, step.lastError ? [h("span", {}, step.lastError),
        step.errorClass ? h("div", { class: "muted" }, step.errorClass) : null] : ""),
      h("td", {}, results(step)),
      h("td", {}, actions(step)));
  }

  // A map step's items: how many are done, failed and running.
  function itemProgress(step) {
    const n = step.items;
    if (!n) return null;
    return h("div", { class: "muted", dataset: { items: `${n.complete}/${n.total}` } },
      `items ${n.complete}/${n.total}`, n.error ? ` · ${n.error} error` : "",
      n.inProgress ? ` · ${n.inProgress} running` : "");
  }

  function results(step) {
    if (step.results === null || step.results === undefined) return "";
    const details = h("details", { open: opened.has(step.name), ontoggle: (e) => {
      if (e.target.open) opened.add(step.name); else opened.delete(step.name);
    } }, h("summary", {}, "show"), json(step.results));
    return details;
  }

  function actions(step) {
    if (!task || task.status === "COMPLETE" || task.status === "CANCELLED") return "";
    const name = step.name;
    const buttons = [];
    if (step.status === "ERROR")
      buttons.push(h("button", { class: "small", dataset: { action: "retry" }, onclick: () => onCommand("retryStep", { step: name }) }, "Retry"));
    if (["PENDING", "ERROR"].includes(step.status))
      buttons.push(h("button", { class: "small", dataset: { action: "resolve" }, onclick: () => openResolve(name) }, "Resolve"));
    const waiting = step.blockedReason && step.blockedReason.code === "waiting_for_signal";
    if (waiting) {
      // The common case, an approval, in one click; any other payload through the form.
      const signal = step.blockedReason.signal;
      buttons.push(h("button", { class: "small primary", dataset: { action: "approve" }, onclick: () => onCommand("sendSignal", { name: signal, payload: { approved: true } }) }, "Approve"));
      buttons.push(h("button", { class: "small", dataset: { action: "signal" }, onclick: () => openForm(name, () => signalForm(name, signal)) }, "Send signal…"));
    }
    if (["PENDING", "IN_PROGRESS", "ERROR"].includes(step.status))
      buttons.push(h("button", { class: "small danger", dataset: { action: "cancel" }, onclick: () => onCommand("cancelStep", { step: name }) }, "Cancel"));
    return [h("div", { class: "actions" }, buttons), forms.get(name) || null];
  }

  function openResolve(name) {
    openForm(name, () => resolveForm(name));
  }

  function openForm(name, build) {
    if (!forms.has(name)) forms.set(name, build());
    update(task);
    forms.get(name).querySelector("textarea").focus();
  }

  function signalForm(name, signal) {
    const payload = h("textarea", { name: "payload", rows: 3, spellcheck: "false" }, '{"approved": true}');
    const out = h("div");
    const close = () => { forms.delete(name); update(task); };
    return h("form", { class: "signal-form", onsubmit: async (e) => {
        e.preventDefault();
        let parsed;
        try { parsed = JSON.parse(payload.value || "{}"); } catch (err) {
          clear(out, errorBox({ message: `Payload is not valid JSON: ${err.message}` }));
          return;
        }
        forms.delete(name);
        await onCommand("sendSignal", { name: signal, payload: parsed });
      } },
      h("label", {}, `Signal '${signal}' payload (JSON, becomes the step's results)`, payload),
      h("div", { class: "actions" }, h("button", { class: "small primary", type: "submit" }, "Send signal"),
        h("button", { class: "small", type: "button", onclick: close }, "Close")), out);
  }

  function resolveForm(name) {
    const results = h("textarea", { name: "results", rows: 3, spellcheck: "false" }, "{}");
    const reason = h("input", { name: "reason", placeholder: "why (for the record)" });
    const out = h("div");
    const close = () => { forms.delete(name); update(task); };
    return h("form", { class: "resolve-form", onsubmit: async (e) => {
        e.preventDefault();
        let parsed;
        try { parsed = JSON.parse(results.value || "null"); } catch (err) {
          clear(out, errorBox({ message: `Results are not valid JSON: ${err.message}` }));
          return;
        }
        forms.delete(name);
        await onCommand("resolveStep", { step: name, results: parsed, reason: reason.value || null });
      } },
      h("label", {}, "Results (JSON)", results), reason,
      h("div", { class: "actions" }, h("button", { class: "small primary", type: "submit" }, "Resolve step"),
        h("button", { class: "small", type: "button", onclick: close }, "Close")), out);
  }

  /** Refresh the cells that change with time alone. */
  function tick() {
    if (!task) return;
    const now = Date.now();
    const rows = new Map([...body.rows].map((tr) => [tr.dataset.step, tr]));
    for (const step of task.steps) {
      const tr = rows.get(step.name);
      if (!tr) continue;
      tr.querySelector('[data-live="duration"]').textContent = duration(step, now);
      tr.querySelector('[data-live="next"]').textContent =
        step.status === "ERROR" && step.nextAttemptAt ? relative(step.nextAttemptAt, now) : "";
    }
  }

  return { element, update, tick };
}

function duration(step, now) {
  if (step.durationMs !== null && step.durationMs !== undefined && step.status !== "IN_PROGRESS") return ms(step.durationMs);
  if (step.status === "IN_PROGRESS" && step.startedAt) return ms(now - new Date(step.startedAt).getTime());
  return "";
}
