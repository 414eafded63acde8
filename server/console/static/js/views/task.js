// One task, live: its step graph, timeline, step table and event history follow the
// `taskEvents` subscription (each burst of events triggers one re-read of the task and its
// transitions), with the commands cancel, retry, pause/resume and resolve, each answered by a toast.
import { gql, subscribe, unwrap } from "../api.js";
import { badge, clear, errorBox, FINAL, h, json, link, when } from "../dom.js";
import { drawGraph } from "../graph.js";
import { describe, toast } from "../toast.js";
import { eventHistory } from "./history.js";
import { stepTable } from "./steps.js";
import { timeline } from "./timeline.js";

const TASK = `query Task($id: ID!) {
  task(id: $id) {
    id fullName namespace name version status context reason tags createdAt updatedAt completedAt runAt paused
    forkedFrom parentTaskId parentStep children { id fullName status parentStep }
    steps { id name status skipped attempts retryLimit retryable results startedAt completedAt nextAttemptAt
            lastError errorClass durationMs parents children
            blockedReason { code message waitingOn until signal }
            items(first: 1) { total complete error inProgress } }
    transitions { cursor stepName fromStatus toStatus reason metadata occurredAt } } }`;

const HISTORY = `query History($id: ID!) { task(id: $id) { transitions { cursor } } }`;

const EVENTS = `subscription Events($id: ID!, $after: String) {
  taskEvents(id: $id, after: $after) { cursor stepName fromStatus toStatus reason occurredAt } }`;

const TASK_RESULT = "__typename ... on Task { id status } ... on Error { code message }";
const STEP_RESULT = "__typename ... on Step { id name status attempts } ... on Error { code message }";
const COMMANDS = {
  cancelTask: `mutation ($id: ID!) { cancelTask(id: $id) { ${TASK_RESULT} } }`,
  rerunTask: `mutation ($id: ID!, $input: RerunTaskInput!) { rerunTask(id: $id, input: $input) {
    __typename ... on Task { id status } ... on ValidationError { code message details { field messages } }
    ... on Error { code message } } }`,
  retryTask: `mutation ($id: ID!) { retryTask(id: $id) { ${TASK_RESULT} } }`,
  pauseTask: `mutation ($id: ID!) { pauseTask(id: $id) { ${TASK_RESULT} } }`,
  resumeTask: `mutation ($id: ID!) { resumeTask(id: $id) { ${TASK_RESULT} } }`,
  retryStep: `mutation ($taskId: ID!, $step: String!) { retryStep(taskId: $taskId, step: $step) { ${STEP_RESULT} } }`,
  cancelStep: `mutation ($taskId: ID!, $step: String!) { cancelStep(taskId: $taskId, step: $step) { ${STEP_RESULT} } }`,
  resolveStep: `mutation ($taskId: ID!, $step: String!, $results: JSON, $reason: String) {
    resolveStep(taskId: $taskId, step: $step, results: $results, reason: $reason) { ${STEP_RESULT} } }`,
  sendSignal: `mutation ($taskId: ID!, $name: String!, $payload: JSON) {
    sendSignal(taskId: $taskId, name: $name, payload: $payload) {
      __typename ... on Signal { name consumedBy } ... on Error { code message } } }`,
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
                  cursor: cursors.length ? cursors[cursors.length - 1] : null, watching: new Map() };
  const el = {
    header: h("div", { id: "task-header" }), actions: h("div", { class: "actions", id: "task-actions" }),
    feedback: h("div", { id: "task-feedback" }), live: h("span", { class: "live", id: "live-state" }),
    graph: h("div", { class: "graph", id: "task-graph" }), steps: h("div", { id: "step-table" }),
  };
  const chart = timeline();
  const eventLog = eventHistory();
  clear(view, h("p", {}, link("#/tasks", "← Tasks")), el.header, el.actions, el.feedback,
    h("h2", {}, "Step graph ", el.live), h("div", { class: "panel" }, el.graph),
    h("h2", {}, "Timeline"), h("div", { class: "panel" }, chart.element),
    h("h2", {}, "Steps"), el.steps,
    h("details", { class: "panel" }, h("summary", {}, "Context"), json(first.task.context)),
    h("details", { class: "panel", open: true, id: "history" }, h("summary", {}, "Event history"), eventLog.element));

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
    // Paused (by hand or through its handler): running steps finish, no new one starts.
    const paused = t.paused ? h("span", { class: "badge s-paused", id: "paused-badge" }, "paused") : null;
    clear(el.header, h("h1", {}, t.fullName, " ", badge(t.status), " ", paused),
      h("dl", { class: "kv" },
        h("dt", {}, "id"), h("dd", {}, h("code", { id: "task-id" }, t.id)),
        h("dt", {}, "created"), h("dd", {}, when(t.createdAt)),
        // A delayed start: the steps say `scheduled` until then.
        t.runAt ? [h("dt", {}, "starts"), h("dd", { id: "task-run-at" }, when(t.runAt))] : null,
        t.forkedFrom ? [h("dt", {}, "forked from"),
          h("dd", { id: "task-forked-from" }, link(`#/tasks/${t.forkedFrom}`, t.forkedFrom))] : null,
        h("dt", {}, "last change"), h("dd", {}, when(t.updatedAt)),
        t.completedAt ? [h("dt", {}, "ended"), h("dd", {}, when(t.completedAt))] : null,
        t.reason ? [h("dt", {}, "reason"), h("dd", {}, t.reason)] : null,
        // Child tasks: the task whose step started this one, and the ones this one started.
        t.parentTaskId ? [h("dt", {}, "started by"), h("dd", { id: "task-parent" },
          link(`#/tasks/${t.parentTaskId}`, t.parentTaskId), ` (step ${t.parentStep})`)] : null,
        t.children.length ? [h("dt", {}, "children"), h("dd", { id: "task-children" },
          t.children.map((c) => h("div", {}, link(`#/tasks/${c.id}`, c.fullName), " ", badge(c.status),
            ` (step ${c.parentStep})`)))] : null));
    paintActions();
    // Map items write no history, so no event says they moved: re-read while a map runs.
    if (t.steps.some((s) => s.items && s.status === "IN_PROGRESS")) later(() => setTimeout(refreshSoon, 1000));
    table.update(t);
    // Each view in a task of its own: a task of hundreds of steps never freezes a frame.
    later(() => chart.update(t, t.transitions));
    later(() => { eventLog.update(t.transitions); reportOutcomes(t); });
    drawGraph(el.graph, t.steps.map((s) => ({ name: s.name, status: s.skipped ? "SKIPPED" : s.status })),
      t.steps.flatMap((s) => s.parents.map((p) => [p, s.name])));
  }

  function later(work) {
    setTimeout(() => { if (ctx.current() && state.task) work(); }, 0);
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
        "Retry failed steps"),
      t.paused
        ? h("button", { id: "resume-task", onclick: () => command("resumeTask", { id }) }, "Resume")
        : h("button", { id: "pause-task", disabled: !cancellable, onclick: () => command("pauseTask", { id }) }, "Pause"),
      rerunControl(t));
  }

  // Fork: a new task keeps the results of the steps not downstream of the one picked and
  // runs that step and its descendants again. Only a finished task can be forked. The
  // context box starts as the task's own: an edited one replaces it in the fork.
  function rerunControl(t) {
    const pick = h("select", { id: "rerun-step", "aria-label": "Re-run from step" },
      t.steps.map((s) => h("option", { value: s.name }, s.name)));
    const original = JSON.stringify(t.context ?? {}, null, 2);
    const context = h("textarea", { id: "rerun-context", rows: 4, cols: 40,
      "aria-label": "Context of the new task (JSON object)" }, original);
    const go = async () => {
      clear(el.feedback);
      const input = { fromStep: pick.value };
      if (context.value.trim() !== original.trim()) {
        let parsed;
        try { parsed = JSON.parse(context.value); } catch (err) {
          toast(`The context is not JSON: ${err.message}`, "error");
          return;
        }
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
          toast("The context must be a JSON object", "error");
          return;
        }
        input.context = parsed;
      }
      try {
        const data = await gql(COMMANDS.rerunTask, { id, input });
        const fork = unwrap(data.rerunTask);
        toast(`Forked from ${pick.value}: new task ${fork.id}`, "ok");
        window.location.hash = `#/tasks/${fork.id}`;
      } catch (err) {
        toast(`Could not re-run from ${pick.value}: ${describe(err)}`, "error");
        showError(err);
      }
    };
    return h("span", { class: "rerun" }, pick,
      h("button", { id: "rerun-task", disabled: !FINAL.has(t.status), onclick: go }, "Re-run from step"),
      h("details", { class: "rerun-context" }, h("summary", {}, "with a new context"), context));
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

  function showError(err) { clear(el.feedback, errorBox(err)); }

  // After a retry, say how the new attempt ended (a step may fail again at once, and the
  // page must not look as if nothing happened): steps watched -> history length when retried.
  function reportOutcomes(t) {
    for (const [name, seen] of state.watching) {
      const later = t.transitions.slice(seen).filter((e) => e.stepName === name);
      const started = later.findIndex((e) => e.toStatus === "IN_PROGRESS");
      const ended = later.slice(started + 1).find((e) => FINAL.has(e.toStatus));
      if (started < 0 || !ended) continue;
      state.watching.delete(name);
      const step = t.steps.find((s) => s.name === name) || {};
      const attempt = ended.metadata && ended.metadata.attempt ? ` (attempt ${ended.metadata.attempt})` : "";
      if (ended.toStatus === "ERROR")
        toast(`${name} failed again${attempt}: ${step.lastError || ended.reason || "no message"}`, "error");
      else toast(`${name}${attempt} ended ${ended.toStatus.toLowerCase().replace("_", " ")}`, "ok");
    }
  }

  const DONE = { cancelTask: "Task cancelled", retryTask: "Failed steps set to run again",
                 pauseTask: "Task paused", resumeTask: "Task resumed",
                 retryStep: "Step set to run again", cancelStep: "Step cancelled", resolveStep: "Step resolved by hand",
                 sendSignal: "Signal sent" };
  const TRIED = { cancelTask: "cancel the task", retryTask: "retry the failed steps", retryStep: "retry step",
                  pauseTask: "pause the task", resumeTask: "resume the task",
                  cancelStep: "cancel step", resolveStep: "resolve step", sendSignal: "send signal" };

  async function command(name, vars) {
    clear(el.feedback);
    const retried = name === "retryTask" ? state.task.steps.filter((s) => s.status === "ERROR")
      : name === "retryStep" ? state.task.steps.filter((s) => s.name === vars.step) : [];
    const seen = state.task.transitions.length;  // before: the new attempt may end at once
    try {
      const data = await gql(COMMANDS[name], { taskId: id, ...vars });
      const result = unwrap(data[name]);
      for (const s of retried) state.watching.set(s.name, seen);
      const what = vars.step ? `${DONE[name]}: ${vars.step}` : DONE[name];
      if (name === "sendSignal")
        toast(`${DONE[name]}: ${result.name} (${result.consumedBy ? `completed ${result.consumedBy}` : "kept until a step waits for it"}).`, "ok");
      else toast(`${what} (now ${String(result.status).toLowerCase().replace("_", " ")}).`, "ok");
      state.ended = false;  // a command may set the task going again: follow it anew
      await refresh();
    } catch (err) {
      toast(`Could not ${TRIED[name]}${vars.step || vars.name ? ` ${vars.step || vars.name}` : ""}: ${describe(err)}`, "error");
      showError(err);
    }
  }

  // Running steps count up and backing-off steps count down between events.
  const ticker = setInterval(() => { table.tick(); chart.tick(); eventLog.tick(); }, 500);
  ctx.onLeave(() => {
    clearInterval(ticker);
    if (state.poll) clearInterval(state.poll);
    if (pending) clearTimeout(pending);
    if (state.stop) state.stop();
  });
  paint();
  follow();
}
