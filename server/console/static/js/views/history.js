// A task's whole event history: every transition of the task and its steps, oldest first and
// numbered by position (so #7 stays #7 as events arrive), with the absolute time to the
// millisecond and how long ago, filterable by step, following new events live.
import { ago, clear, h, stamp } from "../dom.js";

const lower = (s) => (s || "—").toLowerCase();
// The newest events are drawn at once; earlier ones on request, so a task of hundreds of
// steps (600 events for 200) opens without a long frame. All are loaded, numbered and counted.
const RECENT = 200;

export function eventHistory() {
  const filter = h("select", { id: "history-step", "aria-label": "Show events of" });
  const list = h("ol", { id: "event-log", class: "history", tabindex: "0", "aria-label": "Event history" });
  const more = h("button", { type: "button", class: "small", id: "history-earlier", hidden: true });
  const count = h("span", { class: "muted", id: "history-count" });
  const element = h("div", { class: "history-panel" },
    h("div", { class: "history-tools" }, h("label", { class: "inline" }, "Show ", filter), count), more, list);
  let events = [];
  let chosen = "";
  let all = false;
  more.addEventListener("click", () => { all = true; paint(); list.scrollTop = 0; });
  filter.addEventListener("change", () => { chosen = filter.value; paint(true); });

  function options() {
    const steps = [...new Set(events.map((e) => e.stepName).filter(Boolean))];
    const want = ["", "(task)", ...steps];
    if ([...filter.options].map((o) => o.value).join("\n") === want.join("\n")) return;
    clear(filter, want.map((v) => h("option", { value: v, selected: v === chosen },
      v === "" ? "all events" : v === "(task)" ? "the task itself" : `step ${v}`)));
  }

  function paint(jump = false) {
    // Follow new events only when the reader is already at the end (not while reading back).
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
    const now = Date.now();
    const matching = events.map((e, i) => [i + 1, e]).filter(([, e]) =>
      !chosen || (chosen === "(task)" ? !e.stepName : e.stepName === chosen));
    const shown = all ? matching : matching.slice(-RECENT);
    const hidden = matching.length - shown.length;
    more.hidden = !hidden;
    more.textContent = `Show the ${hidden} earlier event${hidden === 1 ? "" : "s"}`;
    clear(list, shown.map(([n, e]) => {
      const attempt = e.metadata && e.metadata.attempt;
      return h("li", { value: n, dataset: { n, step: e.stepName || "", to: e.toStatus } },
        h("span", { class: "ev-n" }, `#${n}`),
        h("time", { datetime: e.occurredAt, title: e.occurredAt }, stamp(e.occurredAt)),
        h("span", { class: "ev-ago muted", dataset: { at: e.occurredAt } }, ago(e.occurredAt, now)),
        h("span", { class: "ev-what" }, h("strong", {}, e.stepName || "task"), ": ",
          `${lower(e.fromStatus)} → ${lower(e.toStatus)}`,
          attempt ? ` (attempt ${attempt})` : "", e.reason ? ` — ${e.reason}` : ""));
    }));
    count.textContent = `${matching.length} of ${events.length} events`;
    if (jump || atEnd) list.scrollTop = list.scrollHeight;
  }

  return {
    element,
    update(next) {
      const grew = next.length !== events.length;
      events = next;
      options();
      if (grew) paint();
    },
    tick() {
      const now = Date.now();
      for (const el of list.querySelectorAll(".ev-ago")) el.textContent = ago(el.dataset.at, now);
    },
  };
}
