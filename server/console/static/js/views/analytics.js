// Analytics: the health score, trends, slowest tasks and steps, and error patterns from the
// GraphQL `analytics` field, drawn as charts. The selection is built from the schema itself
// (introspection), so a renamed or added report field never breaks the page; when
// introspection is off, the documented field names are asked for instead.
import { gql } from "../api.js";
import { clear, errorBox, h, ms } from "../dom.js";
import { gauge, hbars, hourly, vbars } from "../charts.js";

const TYPE_REF = "kind name ofType { kind name ofType { kind name ofType { kind name } } }";
const SCHEMA = `{ __schema { queryType { name } types { name kind
  fields { name args { name defaultValue type { ${TYPE_REF} } } type { ${TYPE_REF} } } } } }`;

const HOURLY = `query Hourly($hours: Int!) { hourlyTaskOutcomes(periodHours: $hours) { hour completed failed } }`;

const FALLBACK = (period, ns) => `{ analytics {
  performance { systemHealthScore
    performanceTrends { window completionRate avgDurationMs }
    taskStatistics { totalTasks completed failed retried }
    processingTimes { p50 p95 p99 } }
  bottlenecks(periodHours: ${period}${ns ? `, namespace: ${JSON.stringify(ns)}` : ""}) { analysisPeriod
    slowestTasks { taskName namespace version avgDurationMs executionCount failureRate }
    slowestSteps { stepName taskName avgDurationMs retryRate }
    errorPatterns { errorType frequency affectedSteps }
    recommendations { type step taskName rationale } } } }`;

let schemaCache = null;

function named(ref) { while (ref && !ref.name) ref = ref.ofType; return ref; }
function required(ref) { return ref && ref.kind === "NON_NULL"; }

function selection(types, typeName, depth, args) {
  const type = types.get(typeName);
  if (!type || !type.fields || depth > 4) return null;
  const parts = [];
  for (const field of type.fields) {
    const given = [];
    let skip = false;
    for (const arg of field.args) {
      if (/period/i.test(arg.name) && args.period) given.push(`${arg.name}: ${args.period}`);
      else if (arg.name === "namespace" && args.namespace) given.push(`namespace: ${JSON.stringify(args.namespace)}`);
      else if (required(arg.type) && arg.defaultValue === null) skip = true;
    }
    if (skip) continue;
    const inner = named(field.type);
    const call = given.length ? `(${given.join(", ")})` : "";
    if (["OBJECT", "INTERFACE"].includes(inner.kind)) {
      const sub = selection(types, inner.name, depth + 1, args);
      if (sub) parts.push(`${field.name}${call} { ${sub} }`);
    } else if (inner.kind !== "UNION") {
      parts.push(`${field.name}${call}`);
    }
  }
  return parts.join(" ") || null;
}

async function buildQuery(period, namespace) {
  if (schemaCache === null) {
    try { schemaCache = (await gql(SCHEMA)).__schema; } catch { schemaCache = false; }
  }
  if (!schemaCache) return FALLBACK(period, namespace);
  const types = new Map(schemaCache.types.map((t) => [t.name, t]));
  const query = types.get(schemaCache.queryType.name);
  const field = query.fields.find((f) => f.name === "analytics");
  if (!field) throw new Error("This server's API has no analytics yet (no `analytics` field in its GraphQL schema).");
  const sub = selection(types, named(field.type).name, 1, { period, namespace });
  return `{ analytics { ${sub} } }`;
}

/** The first value whose key matches `pattern`, searching nested objects breadth-first. */
function find(obj, pattern) {
  const queue = [obj];
  while (queue.length) {
    const cur = queue.shift();
    if (!cur || typeof cur !== "object" || Array.isArray(cur)) continue;
    for (const [k, v] of Object.entries(cur)) if (pattern.test(k)) return v;
    queue.push(...Object.values(cur));
  }
  return undefined;
}

function labelOf(item, fallback) {
  return item.window || item.period || item.label || item.name
    || Object.values(item).find((v) => typeof v === "string") || fallback;
}

/** Trends as [{label, completionRate, avgDurationMs}] whether sent as a list or as an object. */
function trends(value) {
  if (!value) return [];
  const entries = Array.isArray(value) ? value.map((v, i) => [labelOf(v, `#${i + 1}`), v]) : Object.entries(value);
  return entries.filter(([, v]) => v && typeof v === "object").map(([label, v]) => ({
    label: String(label).replace(/^(last|h|window)_?/i, "").replace(/^(\d+)$/, "$1h"),
    completionRate: find(v, /completion/i), avgDurationMs: find(v, /duration/i) }));
}

const pct = (v) => {
  const n = Number(v) * 100;
  return `${n === 0 || n >= 10 ? n.toFixed(0) : n.toFixed(1)}%`;
};

function chartPanel(title, chart, extra = null, id = null) {
  return h("section", { class: "panel chart", id }, h("h3", {}, title), h("div", { class: "chart-box", tabindex: "0", role: "group", "aria-label": title }, chart), extra);
}

export async function render(view, ctx) {
  const period = parseInt(ctx.params.period || "24", 10) || 24;
  const namespace = ctx.params.namespace || "";
  const controls = h("form", { class: "filters", id: "analytics-filters", onsubmit: (e) => {
      e.preventDefault();
      const f = Object.fromEntries(new FormData(e.target).entries());
      ctx.navigate(`#/analytics?period=${f.period}${f.namespace ? `&namespace=${encodeURIComponent(f.namespace)}` : ""}`);
    } },
    h("label", {}, "Period", h("select", { name: "period" },
      [1, 4, 24, 168].map((p) => h("option", { value: p, selected: p === period }, p === 168 ? "7 days" : `${p} h`)))),
    h("label", {}, "Namespace (bottlenecks)", h("input", { name: "namespace", value: namespace, placeholder: "all", size: 14 })),
    h("button", { type: "submit", class: "primary" }, "Show"));
  let data, hours = null;
  try {
    data = (await gql(await buildQuery(period, namespace))).analytics;
    // Per hour from the rollups; an older server without the field still shows the rest.
    hours = await gql(HOURLY, { hours: Math.min(period, 168) }).then((d) => d.hourlyTaskOutcomes, () => null);
  } catch (err) {
    clear(view, h("h1", {}, "Analytics"), controls, errorBox(err, "Analytics are not available:"));
    return;
  }
  const score = find(data, /healthScore/i);
  const stats = find(data, /taskStatistics/i) || {};
  const times = find(data, /processingTimes/i) || {};
  const trend = trends(find(data, /trends/i));
  const slowTasks = find(data, /slowestTasks/i) || [];
  const slowSteps = find(data, /slowestSteps/i) || [];
  const errors = find(data, /errorPatterns/i) || [];
  const advice = find(data, /recommendations/i) || [];
  const periodLabel = find(data, /analysisPeriod/i);

  clear(view, h("h1", {}, "Analytics"), controls,
    hours ? chartPanel(`Completed and failed tasks per hour (last ${period === 168 ? "7 days" : `${period} h`})`,
      hourly(hours), null, "hourly-panel") : null,
    h("div", { class: "charts", id: "analytics-charts" },
      chartPanel("System health", gauge(score ?? "—"),
        h("p", { class: "muted" }, `Last 24 h: ${stats.totalTasks ?? "?"} tasks, ${stats.completed ?? "?"} completed, `,
          `${stats.failed ?? "?"} failed, ${stats.retried ?? "?"} needed a retry.`)),
      chartPanel("Completion rate by window", vbars(trend.map((t) => ({ label: t.label, value: t.completionRate })),
        { format: pct, max: 1, color: "#3fa66a", label: "completion rate", unit: "% of finished tasks" })),
      chartPanel("Average task duration by window", vbars(trend.map((t) => ({ label: t.label, value: t.avgDurationMs })),
        { format: ms, label: "average duration", unit: "ms" })),
      chartPanel("Task duration percentiles (24 h)", vbars(["p50", "p95", "p99"].map((p) => ({ label: p, value: times[p] })),
        { format: ms, color: "#7a5af5", label: "percentiles", unit: "ms" })),
      chartPanel(`Slowest tasks${periodLabel ? ` (${periodLabel})` : ""}`, hbars(slowTasks.map((t) => ({
        label: t.taskName, value: t.avgDurationMs,
        note: `${t.executionCount ?? "?"} runs, ${pct(t.failureRate ?? 0)} failed` })), { format: ms, label: "slowest tasks", unit: "ms" })),
      chartPanel("Slowest steps", hbars(slowSteps.map((s) => ({
        label: `${s.taskName}.${s.stepName}`, value: s.avgDurationMs, note: `${pct(s.retryRate ?? 0)} retried` })),
        { format: ms, color: "#e0a21c", label: "slowest steps", unit: "ms" })),
      chartPanel("Error patterns", hbars(errors.map((e) => ({ label: e.errorType, value: e.frequency,
        note: (e.affectedSteps || []).join(", ") })), { color: "#d64545", label: "error patterns", unit: "failed attempts" }))),
    h("h2", {}, "Recommendations"),
    advice.length ? h("ul", { class: "panel", id: "recommendations" }, advice.map((r) =>
      h("li", {}, h("strong", {}, `${r.taskName ? `${r.taskName}.` : ""}${r.step}: `), r.rationale)))
      : h("p", { class: "muted" }, "Nothing to recommend: no step has enough runs, or none is near its limits."));
}
