// The handler catalogue: namespaces and their handlers, and one handler with its step graph
// and a form to start a task from it.
import { gql, unwrap } from "../api.js";
import { clear, errorBox, h, json, link } from "../dom.js";
import { exampleContext } from "../example.js";
import { drawGraph, miniGraph } from "../graph.js";

const CATALOGUE = `query Catalogue {
  namespaces { name description handlerCount
    handlers { name version description versions stepTemplates { name }
               dependencyGraph { nodes edges { from to } } } } }`;

const HANDLER = `query Handler($namespace: String!, $name: String!, $version: String) {
  handler(namespace: $namespace, name: $name, version: $version) {
    name namespace version fullName description versions contextSchema paused
    priority concurrency { key limit strategy }
    stepTemplates { name description handlerClass dependsOn retryable retryLimit skippable
                    timeoutSeconds customEvents concurrency { key limit }
                    rateLimit { key limit period } }
    dependencyGraph { nodes edges { from to } executionOrder } } }`;

const PAUSE = `mutation Pause($namespace: String!, $name: String!) {
  pauseHandler(namespace: $namespace, name: $name) {
    __typename ... on HandlerPause { paused } ... on Error { code message } } }`;

const RESUME = `mutation Resume($namespace: String!, $name: String!) {
  resumeHandler(namespace: $namespace, name: $name) {
    __typename ... on HandlerPause { paused } ... on Error { code message } } }`;
// Flow control: the current use of the handler's limits per key (a separate query: a token
// that may read the handler but not the limits still sees the rest of the page).
const LIMITS = `query Limits($handler: String) {
  limits(handler: $handler) { kind step key limit inUse waiting holders periodSeconds } }`;

const CREATE = `mutation Create($input: CreateTaskInput!) {
  createTask(input: $input) {
    __typename
    ... on Task { id status fullName }
    ... on Error { code message }
    ... on ValidationError { details { field messages } } } }`;

export async function renderCatalogue(view) {
  const data = await gql(CATALOGUE);
  const cards = data.namespaces.map((ns) => h("section", { class: "panel card", dataset: { namespace: ns.name } },
    h("h3", {}, ns.name),
    h("div", { class: "muted" }, ns.description || "", ` · ${ns.handlerCount} handler${ns.handlerCount === 1 ? "" : "s"}`),
    h("ul", {}, ns.handlers.map((handler) => h("li", {},
      link(`#/handlers/${encodeURIComponent(ns.name)}/${encodeURIComponent(handler.name)}`, handler.name),
      " ", h("span", { class: "muted" }, handler.versions.join(", ")),
      ` · ${handler.stepTemplates.length} steps`,
      handler.description ? h("div", { class: "muted" }, handler.description) : null,
      miniGraph(handler.dependencyGraph.nodes.map((n) => ({ name: n })),
        handler.dependencyGraph.edges.map((e) => [e.from, e.to])))))));
  clear(view, h("h1", {}, "Handler catalogue"),
    data.namespaces.length ? h("div", { class: "grid" }, cards)
      : h("p", { class: "muted" }, "No handlers are loaded. Start the server with --examples or set TASKER_HANDLERS_PATH."));
}

export async function renderHandler(view, ctx, namespace, name) {
  const version = ctx.params.version || null;
  const { handler } = await gql(HANDLER, { namespace, name, version });
  if (!handler) {
    clear(view, errorBox({ message: `No handler ${namespace}.${name}${version ? `@${version}` : ""} is loaded.` }));
    return;
  }
  const graph = h("div", { class: "graph", id: "handler-graph" });
  const versions = h("select", { id: "version-select", onchange: (e) =>
    ctx.navigate(`#/handlers/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}?version=${encodeURIComponent(e.target.value)}`) },
    handler.versions.map((v) => h("option", { value: v, selected: v === handler.version }, v)));
  clear(view,
    h("p", {}, link("#/handlers", "← Catalogue")),
    h("h1", {}, handler.fullName, " ", pauseState(handler)),
    pauseActions(handler, () => renderHandler(view, ctx, namespace, name)),
    h("p", {}, handler.description || ""),
    h("label", { style: "max-width:200px" }, "Version", versions),
    h("h2", {}, "Step graph"),
    h("div", { class: "panel" }, graph),
    h("h2", {}, "Steps"),
    stepTemplates(handler.stepTemplates),
    await flowControl(handler),
    h("h2", {}, "Start a task"),
    createForm(handler, ctx));
  const g = handler.dependencyGraph;
  await drawGraph(graph, g.nodes.map((n) => ({ name: n })), g.edges.map((e) => [e.from, e.to]));
}

function pauseState(handler) {
  return handler.paused ? h("span", { class: "badge s-paused", id: "handler-paused-badge" }, "paused") : null;
}

// Pausing a handler holds every task of it, present and future: no new step starts.
function pauseActions(handler, repaint) {
  const out = h("span", { id: "handler-pause-result" });
  async function run(document, field) {
    try {
      unwrap((await gql(document, { namespace: handler.namespace, name: handler.name }))[field]);
      await repaint();
    } catch (err) {
      clear(out, errorBox(err, `Could not ${field === "pauseHandler" ? "pause" : "resume"} the handler:`));
    }
  }
  return h("div", { class: "actions" },
    handler.paused
      ? h("button", { id: "resume-handler", onclick: () => run(RESUME, "resumeHandler") }, "Resume handler")
      : h("button", { id: "pause-handler", onclick: () => run(PAUSE, "pauseHandler") }, "Pause handler"),
    out);
}

function stepTemplates(steps) {
  return h("table", { class: "data" },
    h("thead", {}, h("tr", {}, ["step", "depends on", "handler class", "retries", "timeout", "skippable", "limits"].map((c) => h("th", {}, c)))),
    h("tbody", {}, steps.map((s) => h("tr", {},
      h("td", {}, h("strong", {}, s.name), s.description ? h("div", { class: "muted" }, s.description) : null),
      h("td", {}, s.dependsOn.join(", ") || "—"),
      h("td", {}, h("code", {}, s.handlerClass)),
      h("td", {}, s.retryable ? `up to ${s.retryLimit} attempts` : "no retry"),
      h("td", {}, s.timeoutSeconds ? `${s.timeoutSeconds} s` : "default"),
      h("td", {}, s.skippable ? "yes" : "no"),
      h("td", {}, stepLimits(s))))));
}

function stepLimits(s) {
  const parts = [];
  if (s.concurrency) parts.push(`${s.concurrency.limit} at once per ${s.concurrency.key || "handler"}`);
  if (s.rateLimit) parts.push(`${s.rateLimit.limit} starts / ${s.rateLimit.period} per ${s.rateLimit.key || "handler"}`);
  return parts.join("; ") || "—";
}

// The handler's limits and their current use per key: slots held and waited for, rate-window
// starts. Nothing when the handler declares none.
async function flowControl(handler) {
  const declared = handler.concurrency || handler.stepTemplates.some((s) => s.concurrency || s.rateLimit);
  if (!declared) return null;
  const head = h("p", {}, `Priority ${handler.priority}`,
    handler.concurrency ? ` · at most ${handler.concurrency.limit} tasks in progress per ` +
      `${handler.concurrency.key || "handler"} (${handler.concurrency.strategy})` : "");
  let usage;
  try {
    const { limits } = await gql(LIMITS, { handler: `${handler.namespace}/${handler.name}` });
    usage = h("table", { class: "data", id: "limit-usage" },
      h("thead", {}, h("tr", {}, ["limit", "step", "key", "in use", "waiting", "held by"].map((c) => h("th", {}, c)))),
      h("tbody", {}, limits.map((u) => h("tr", { dataset: { kind: u.kind, key: u.key } },
        h("td", {}, u.kind === "rate" ? `rate (${u.periodSeconds} s window)` : u.kind === "task" ? "tasks" : "steps"),
        h("td", {}, u.step || "—"),
        h("td", {}, u.key || h("span", { class: "muted" }, "no key in use")),
        h("td", { class: "num" }, `${u.inUse} / ${u.limit}`),
        h("td", { class: "num" }, String(u.waiting)),
        h("td", {}, u.holders.join(", "))))));
  } catch (err) {
    usage = errorBox(err, "Current use unavailable:");
  }
  return h("section", { id: "flow-control" }, h("h2", {}, "Flow control"), head, h("div", { class: "panel" }, usage));
}

function createForm(handler, ctx) {
  const example = exampleContext(handler.contextSchema);
  // An example the schema might refuse is worse than none: then the field starts empty.
  const context = h("textarea", { id: "create-context", rows: 8, spellcheck: "false",
    placeholder: "{ … } a JSON object matching the schema" }, example ? JSON.stringify(example, null, 2) : "");
  const priority = h("select", { id: "create-priority" },
    [1, 2, 3].map((p) => h("option", { value: String(p), selected: p === handler.priority },
      `${p}${p === 1 ? " (low)" : p === 3 ? " (high)" : ""}`)));
  const out = h("div", { id: "create-result" });
  async function submit(event) {
    event.preventDefault();
    let parsed;
    try {
      parsed = JSON.parse(context.value || "{}");
    } catch (err) {
      clear(out, errorBox({ message: `The context is not valid JSON: ${err.message}` }));
      return;
    }
    clear(out, h("p", { class: "muted" }, "Creating…"));
    try {
      const { createTask } = await gql(CREATE, { input: {
        namespace: handler.namespace, name: handler.name, version: handler.version, context: parsed,
        priority: Number(priority.value) } });
      const task = unwrap(createTask);
      ctx.navigate(`#/tasks/${task.id}`);
    } catch (err) {
      clear(out, errorBox(err, "The task was not created:"));
    }
  }
  return h("form", { class: "panel", id: "create-form", onsubmit: submit },
    h("div", { class: "create-fields" },
      h("label", {}, example ? "Context (JSON object): a minimal example the schema accepts"
        : "Context (JSON object): fill it in from the schema", context),
      handler.contextSchema ? h("div", { class: "schema-aside", id: "context-schema" },
        h("div", { class: "muted" }, "Context schema"), json(handler.contextSchema)) : null),
    h("label", { style: "max-width:200px" }, "Priority", priority),
    h("div", { class: "actions", style: "margin-top:10px" }, h("button", { class: "primary", type: "submit", id: "create-submit" }, "Create task")),
    out);
}
