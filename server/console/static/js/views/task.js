// One task, live: its step graph and step table follow the `taskEvents` subscription (each
// event triggers one re-read of the task), with the commands cancel, retry and resolve.
import { gql, subscribe, unwrap } from "../api.js";
import { badge, clear, errorBox, FINAL, h, json, link, when } from "../dom.js";
import { drawGraph } from "../graph.js";
import { stepTable } from "./steps.js";

const TASK = `query Task($id: ID!) {
  task(id: $id) {
    id fullName namespace name version status context reason tags createdAt updatedAt completedAt
    steps { id name status attempts retryLimit retryable results startedAt completedAt nextAttemptAt
            lastError errorClass durationMs parents children
            blockedReason { code message waitingOn until } } } }`;

const HISTORY = `query History($id: ID!) { task(id: $id) { transitions { cursor } } }`;

const EVENTS = `subscription Events($id: ID!, $after: String) {
  taskEvents(id: $id, after: $after) { cursor stepName fromStatus toStatus reason occurredAt } }`;

const TASK_RESULT = "__typename ... on Task { id status } ... on Error { code message }";
const STEP_RESULT = "__typename ... on Step { id status } ... on Error { code message }";
const COMMANDS = {
  cancelTask: `mutation ($id: ID!) { cancelTask(id: $id) { ${TASK_RESULT} } }`,
  retryTask: `mutation ($id: ID!) { retryTask(id: $id) { ${TASK_RESULT} } }`,
  retryStep: `mutation ($taskId: ID!, $step: String!) { retryStep(taskId: $taskId, step: $step) { ${STEP_RESULT} } }`,
  cancelStep: `mutation ($taskId: ID!, $step: String!) { cancelStep(taskId: $taskId, step: $step) { ${STEP_RESULT} } }`,
  resolveStep: `mutation ($taskId: ID!, $step: String!, $results: JSON, $reason: String) {
    resolveStep(taskId: $taskId, step: $step, results: $results, reason: $reason) { ${STEP_RESULT} } }`,
};

export async function render(view, ctx, id) {
  // The last event cursor is read *before* the task, and events are asked for from there: a
  // change landing between the two reads is then replayed rather than missed.
  const history = (await gql(HISTORY, { id })).task;
  const first = await gql(TASK, { id });
  if (!first.task) {
    clear(view, h("p", {}, link("#/tasks", "← Tasks")), errorBox({ message: `No task has the id ${id}.` }));
    return;
  }
  const cursors = history ? history.transitions.map((t) => t.cursor) : [];
  const state = { task: first.task, stop: null, poll: null, confirming: false, ended: false,
                  cursor: cursors.length ? cursors[cursors.length - 1] : null };
  const el = {
    header: h("div", { id: "task-header" }), actions: h("div", { class: "actions", id: "task-actions" }),
    feedback: h("div", { id: "task-feedback" }), live: h("span", { class: "live", id: "live-state" }),
    graph: h("div", { class: "graph", id: "task-graph" }), steps: h("div", { id: "step-table" }),
    log: h("ol", { id: "event-log", class: "muted" }),
  };
  clear(view, h("p", {}, link("#/tasks", "← Tasks")), el.header, el.actions, el.feedback,
    h("h2", {}, "Step graph ", el.live), h("div", { class: "panel" }, el.graph),
    h("h2", {}, "Steps"), el.steps,
    h("details", { class: "panel" }, h("summary", {}, "Context"), json(first.task.context)),
    h("details", { class: "panel", open: true }, h("summary", {}, "Live events"), el.log));

  const table = stepTable({ onCommand: (name, vars) => command(name, vars) });
  el.steps.append(table.element);

  async function refresh() {
    const data = await gql(TASK, { id });
    if (!ctx.current() || !data.task) return;
    state.task = data.task;
    paint();
    follow();
  }
  let pending = null;
  const refreshSoon = () => {  // a burst of events costs one read
    pending ||= setTimeout(() => { pending = null; refresh().catch(showError); }, 80);
  };

  function paint() {
    const t = state.task;
    clear(el.header, h("h1", {}, t.fullName, " ", badge(t.status)),
      h("dl", { class: "kv" },
        h("dt", {}, "id"), h("dd", {}, h("code", { id: "task-id" }, t.id)),
        h("dt", {}, "created"), h("dd", {}, when(t.createdAt)),
        h("dt", {}, "last change"), h("dd", {}, when(t.updatedAt)),
        t.completedAt ? [h("dt", {}, "ended"), h("dd", {}, when(t.completedAt))] : null,
        t.reason ? [h("dt", {}, "reason"), h("dd", {}, t.reason)] : null));
    paintActions();
    table.update(t);
    drawGraph(el.graph, t.steps.map((s) => ({ name: s.name, status: s.status })),
      t.steps.flatMap((s) => s.parents.map((p) => [p, s.name])));
  }

  function paintActions() {
    const t = state.task;
    if (state.confirming) {
      const answer = (yes) => { state.confirming = false; paintActions(); if (yes) command("cancelTask", { id }); };
      clear(el.actions, h("span", {}, "Cancel this task and its unfinished steps?"),
        h("button", { class: "danger", id: "confirm-cancel", onclick: () => answer(true) }, "Yes, cancel it"),
        h("button", { id: "keep-task", onclick: () => answer(false) }, "No, keep it"));
      return;
    }
    // An errored task can still be cancelled (it then never retries); a finished one cannot.
    const cancellable = !FINAL.has(t.status) || t.status === "ERROR";
    clear(el.actions,
      h("button", { class: "danger", id: "cancel-task", disabled: !cancellable,
                    onclick: () => { state.confirming = true; paintActions(); } }, "Cancel task"),
      h("button", { id: "retry-task", disabled: t.status !== "ERROR", onclick: () => command("retryTask", { id }) },
        "Retry failed steps"));
  }

  function follow() {
    if (FINAL.has(state.task.status)) {
      if (state.stop) { state.stop(); state.stop = null; }
      setLive(false, "finished");
      return;
    }
    // After the stream said the task ended, a read still showing it running is stale (it
    // started earlier): wait for the newer read instead of subscribing again.
    if (state.stop || state.ended) return;
    setLive(true, "live");
    state.stop = subscribe(EVENTS, { id, after: state.cursor }, {
      next: (data) => {
        const event = data.taskEvents;
        if (event) state.cursor = event.cursor;
        logEvent(event);
        refreshSoon();
      },
      error: (err) => { state.stop = null; fallBackToPolling(err); },
      complete: () => { state.stop = null; state.ended = true; refreshSoon(); },
    });
  }

  function fallBackToPolling(err) {
    setLive(false, `live updates unavailable (${err.message}); refreshing every 2 s`);
    if (state.poll) return;
    state.poll = setInterval(() => {
      if (FINAL.has(state.task.status)) { clearInterval(state.poll); state.poll = null; return; }
      refresh().catch(showError);
    }, 2000);
  }

  function setLive(on, text) { el.live.className = on ? "live on" : "live"; el.live.textContent = text; }

  function logEvent(e) {
    if (!e) return;
    el.log.prepend(h("li", {}, `${when(e.occurredAt)} — ${e.stepName || "task"}: `,
      `${(e.fromStatus || "—").toLowerCase()} → ${e.toStatus.toLowerCase()}`, e.reason ? ` (${e.reason})` : ""));
    while (el.log.children.length > 50) el.log.lastChild.remove();
  }

  function showError(err) { clear(el.feedback, errorBox(err)); }

  async function command(name, vars) {
    clear(el.feedback);
    try {
      const data = await gql(COMMANDS[name], { taskId: id, ...vars });
      unwrap(data[name]);
      state.ended = false;  // a command may set the task going again: follow it anew
      await refresh();
    } catch (err) {
      showError(err);
    }
  }

  // Running steps count up and backing-off steps count down between events.
  const ticker = setInterval(() => table.tick(), 500);
  ctx.onLeave(() => {
    clearInterval(ticker);
    if (state.poll) clearInterval(state.poll);
    if (pending) clearTimeout(pending);
    if (state.stop) state.stop();
  });
  paint();
  follow();
}
