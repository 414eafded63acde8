// The timeline: one row per step, one bar per attempt on a shared time axis from the task's
// creation, coloured by how the attempt ended; running attempts grow while the page is open.
// Built from the task's transitions (each start of work to the change that ended it).
import { clear, h, ms, stamp } from "../dom.js";

/** Attempts per step name: [{start, end, outcome}] in ms since the epoch. */
export function attempts(task, transitions) {
  const out = new Map(task.steps.map((s) => [s.name, []]));
  const open = new Map();
  for (const t of transitions) {
    if (!t.stepName || !out.has(t.stepName)) continue;
    const at = new Date(t.occurredAt).getTime();
    const running = open.get(t.stepName);
    if (running) { running.end = at; running.outcome = t.toStatus; open.delete(t.stepName); }
    if (t.toStatus === "IN_PROGRESS") {
      const attempt = { start: at, end: null, outcome: "IN_PROGRESS" };
      out.get(t.stepName).push(attempt);
      open.set(t.stepName, attempt);
    }
  }
  for (const s of task.steps) {  // a step run before transitions were kept: its last attempt
    if (!out.get(s.name).length && s.startedAt)
      out.get(s.name).push({ start: new Date(s.startedAt).getTime(),
        end: s.completedAt ? new Date(s.completedAt).getTime() : null, outcome: s.status });
  }
  return out;
}

function ticks(span) {
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000,
                 60000, 120000, 300000, 600000, 1800000, 3600000, 7200000, 21600000, 86400000];
  const every = steps.find((s) => span / s <= 8) || span / 8;
  const out = [];
  for (let t = 0; t <= span; t += every) out.push(t);
  return out;
}

export function timeline() {
  const element = h("div", { class: "timeline", id: "timeline" });
  let last = null;

  function paint() {
    if (!last) return;
    const { task, transitions } = last;
    const now = Date.now();
    const runs = attempts(task, transitions);
    const origin = new Date(task.createdAt).getTime();
    let end = origin + 1;
    for (const list of runs.values()) for (const a of list) end = Math.max(end, a.end ?? now);
    if (task.completedAt) end = Math.max(end, new Date(task.completedAt).getTime());
    const span = end - origin;
    const pct = (t) => `${((t - origin) / span * 100).toFixed(3)}%`;
    const width = (a, b) => `${Math.max((b - a) / span * 100, 0.3).toFixed(3)}%`;
    const axis = h("div", { class: "tl-row tl-axis" }, h("div", { class: "tl-label muted" }, "time since created"),
      h("div", { class: "tl-track" }, ticks(span).map((t) =>
        h("span", { class: "tl-tick", style: `left:${pct(origin + t)}` }, ms(t) || "0 ms"))));
    const rows = task.steps.map((step) => h("div", { class: "tl-row", dataset: { step: step.name } },
      h("div", { class: "tl-label", title: step.name }, step.name),
      h("div", { class: "tl-track" }, runs.get(step.name).map((a, i) => {
        const stop = a.end ?? now;
        const label = `${step.name}, attempt ${i + 1}: ${a.outcome.toLowerCase().replace("_", " ")}, `
          + `${ms(stop - a.start)} (${stamp(new Date(a.start).toISOString())} → `
          + `${a.end ? stamp(new Date(a.end).toISOString()) : "running"})`;
        return h("span", { class: `tl-bar t-${a.outcome.toLowerCase()}`, title: label, role: "img", "aria-label": label,
          dataset: { attempt: i + 1, outcome: a.outcome },
          style: `left:${pct(a.start)};width:${width(a.start, stop)}` });
      }))));
    clear(element, axis, rows,
      h("p", { class: "muted tl-total" }, `${ms(span)} from creation to ${task.completedAt ? "the end" : "now"}`));
  }

  return {
    element,
    update(task, transitions) { last = { task, transitions }; paint(); },
    tick() { if (last && last.task.steps.some((s) => s.status === "IN_PROGRESS")) paint(); },
  };
}
