// The task list: the GraphQL `tasks` connection with its filters (namespace, name, version,
// status), its paging (page size, cursor) and an id search, all kept in the URL so a view can
// be shared and the back button returns to it. It refreshes itself every few seconds (a light
// poll of the same page) unless paused; each row shows its steps counted by status.
import { gql } from "../api.js";
import { ago, badge, clear, h, link, STATUSES, when } from "../dom.js";

const NODE = "id fullName namespace name version status createdAt updatedAt completedAt steps { status }";
const SEARCH = `query Search($prefix: String!, $first: Int!) {
  tasksByIdPrefix(prefix: $prefix, first: $first) { ${NODE} } }`;
const POLL_MS = 3000;
const PAUSED = "tasker.tasksPaused";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const TASKS = `query Tasks($namespace: String, $name: String, $version: String, $status: TaskStatus,
                          $first: Int!, $after: String) {
  tasks(namespace: $namespace, name: $name, version: $version, status: $status, first: $first, after: $after) {
    totalCount
    edges { cursor node { ${NODE} } }
    pageInfo { hasNextPage hasPreviousPage endCursor } }
  namespaces { name handlers { name } } }`;

const FILTERS = ["namespace", "name", "version", "status", "q"];

function hashFor(filters, extra = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v) q.set(k, v);
  const s = q.toString();
  return `#/tasks${s ? `?${s}` : ""}`;
}

export async function render(view, ctx) {
  const p = ctx.params;
  const first = Math.min(Math.max(parseInt(p.first || "25", 10) || 25, 1), 100);
  // Earlier pages' cursors travel in the URL ("trail") so Previous works without state.
  const trail = (p.trail || "").split(",").filter(Boolean);
  const after = p.after || null;
  const filters = Object.fromEntries(FILTERS.map((k) => [k, p[k] || ""]));
  const prefix = filters.q.trim().toLowerCase();
  if (UUID.test(prefix)) { ctx.navigate(`#/tasks/${prefix}`); return; }
  const load = async () => {
    const data = await gql(TASKS, {
      namespace: filters.namespace || null, name: filters.name || null, version: filters.version || null,
      status: filters.status || null, first, after });
    if (prefix) {  // an id search: the tasks whose id starts so, newest first
      const found = (await gql(SEARCH, { prefix, first })).tasksByIdPrefix;
      data.tasks = { totalCount: found.length, edges: found.map((node) => ({ node })),
                     pageInfo: { hasNextPage: false } };
    }
    return data;
  };
  const data = await load();
  const conn = data.tasks;

  const input = (key, attrs = {}) => h("input", { name: key, value: filters[key], ...attrs });
  const names = [...new Set(data.namespaces.flatMap((ns) =>
    !filters.namespace || ns.name === filters.namespace ? ns.handlers.map((x) => x.name) : []))];
  const form = h("form", { class: "filters", id: "task-filters", onsubmit: (e) => {
      e.preventDefault();
      const f = Object.fromEntries(new FormData(e.target).entries());
      ctx.navigate(hashFor({ ...Object.fromEntries(FILTERS.map((k) => [k, f[k]])), first: f.first }));
    } },
    h("label", {}, "Task id or prefix", input("q", { id: "task-search", placeholder: "e.g. 3f2a", size: 14,
      autocomplete: "off", spellcheck: "false" })),
    h("label", {}, "Namespace", h("select", { name: "namespace" }, h("option", { value: "" }, "any"),
      data.namespaces.map((ns) => h("option", { value: ns.name, selected: ns.name === filters.namespace }, ns.name)))),
    h("label", {}, "Handler", input("name", { list: "handler-names", placeholder: "any", size: 18 })),
    h("datalist", { id: "handler-names" }, names.map((n) => h("option", { value: n }))),
    h("label", {}, "Version", input("version", { placeholder: "any", size: 8 })),
    h("label", {}, "Status", h("select", { name: "status" }, h("option", { value: "" }, "any"),
      STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s.toLowerCase().replace("_", " "))))),
    h("label", {}, "Per page", h("select", { name: "first" },
      [10, 25, 50, 100].map((n) => h("option", { value: n, selected: n === first }, n)))),
    h("button", { type: "submit", class: "primary" }, "Apply"),
    h("button", { type: "button", onclick: () => ctx.navigate("#/tasks") }, "Reset"));

  const row = (node) => h("tr", { dataset: { taskId: node.id } },
    h("td", {}, link(`#/tasks/${node.id}`, h("code", { title: node.id }, node.id.slice(0, 8)))),
    h("td", {}, node.fullName),
    h("td", {}, badge(node.status)),
    h("td", {}, counts(node.steps)),
    h("td", {}, h("time", { datetime: node.createdAt, title: when(node.createdAt), class: "rel" }, ago(node.createdAt))),
    h("td", {}, h("time", { datetime: node.completedAt || node.updatedAt, title: when(node.completedAt || node.updatedAt),
                            class: "rel" }, ago(node.completedAt || node.updatedAt))));
  const listBox = h("div", { class: "table-wrap", id: "task-list" });
  const paintRows = (edges) => clear(listBox, edges.length
    ? h("table", { class: "data", id: "task-table" },
        h("thead", {}, h("tr", {}, ["task", "handler", "status", "steps", "created", "last change"].map((c) => h("th", {}, c)))),
        h("tbody", {}, edges.map(({ node }) => row(node))))
    : h("p", { class: "muted", id: "no-tasks" }, prefix ? `No task id starts with ${prefix}.` : "No task matches these filters."));
  paintRows(conn.edges);
  const pagerText = h("span", { class: "muted" });
  const paintCount = (total) => {
    pagerText.textContent = `page ${page} of ${Math.max(pages, Math.ceil(total / first))} · ${total} task${total === 1 ? "" : "s"}`;
  };
  const base = { ...filters, first };
  const prev = trail.length ? hashFor(base, { after: trail[trail.length - 1] === "-" ? "" : trail[trail.length - 1],
                                              trail: trail.slice(0, -1).join(",") }) : null;
  const next = conn.pageInfo.hasNextPage
    ? hashFor(base, { after: conn.pageInfo.endCursor, trail: [...trail, after || "-"].join(",") }) : null;
  const page = trail.length + 1;
  const pages = Math.max(1, Math.ceil(conn.totalCount / first));

  const live = h("span", { class: "live", id: "list-live" });
  const toggle = h("button", { type: "button", id: "list-pause", class: "small" });
  const setLive = () => {
    const paused = sessionStorage.getItem(PAUSED) === "1";
    toggle.textContent = paused ? "Resume updates" : "Pause updates";
    toggle.setAttribute("aria-pressed", String(paused));
    live.className = paused ? "live" : "live on";
    live.textContent = paused ? "paused" : `refreshing every ${POLL_MS / 1000} s`;
  };
  toggle.addEventListener("click", () => {
    sessionStorage.setItem(PAUSED, sessionStorage.getItem(PAUSED) === "1" ? "0" : "1");
    setLive();
  });
  setLive();
  paintCount(conn.totalCount);
  let busy = false;
  const timer = setInterval(async () => {
    if (busy || sessionStorage.getItem(PAUSED) === "1" || !ctx.current()) return;
    busy = true;
    try {
      const fresh = (await load()).tasks;
      if (!ctx.current()) return;
      paintRows(fresh.edges);
      paintCount(fresh.totalCount);
      view.dataset.refreshed = String(Date.now());
    } catch (err) {
      live.textContent = `not refreshed: ${err.message}`;
    } finally { busy = false; }
  }, POLL_MS);
  const clock = setInterval(() => {
    for (const t of view.querySelectorAll("time.rel")) t.textContent = ago(t.getAttribute("datetime"));
  }, 1000);
  ctx.onLeave(() => { clearInterval(timer); clearInterval(clock); });

  clear(view,
    h("h1", {}, "Tasks"),
    form,
    h("div", { class: "list-tools" }, toggle, live),
    listBox,
    h("div", { class: "pager" },
      h("button", { id: "prev-page", disabled: !prev, onclick: () => prev && ctx.navigate(prev) }, "← Previous"),
      pagerText,
      h("button", { id: "next-page", disabled: !next, onclick: () => next && ctx.navigate(next) }, "Next →")));
}

/** "2 complete · 1 error": a task's steps counted by status. */
function counts(steps) {
  const by = new Map();
  for (const s of steps || []) by.set(s.status, (by.get(s.status) || 0) + 1);
  return h("div", { class: "counts" }, STATUSES.filter((st) => by.has(st)).map((st) => {
    // Styled like a status badge, but a step count (not the task's status): its own class.
    const label = badge(st).textContent;
    return h("span", { class: `count s-${st.toLowerCase()}`, dataset: { countStatus: st } }, `${by.get(st)} ${label}`);
  }));
}
