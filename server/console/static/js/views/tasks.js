// The task list: the GraphQL `tasks` connection with its filters (namespace, name, version,
// status) and its paging (page size, cursor), all kept in the URL so a view can be shared.
import { gql } from "../api.js";
import { badge, clear, h, link, STATUSES, when } from "../dom.js";

const TASKS = `query Tasks($namespace: String, $name: String, $version: String, $status: TaskStatus,
                          $first: Int!, $after: String) {
  tasks(namespace: $namespace, name: $name, version: $version, status: $status, first: $first, after: $after) {
    totalCount
    edges { cursor node { id fullName namespace name version status createdAt updatedAt completedAt } }
    pageInfo { hasNextPage hasPreviousPage endCursor } }
  namespaces { name handlers { name } } }`;

const FILTERS = ["namespace", "name", "version", "status"];

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
  const data = await gql(TASKS, {
    namespace: filters.namespace || null, name: filters.name || null, version: filters.version || null,
    status: filters.status || null, first, after });
  const conn = data.tasks;

  const input = (key, attrs = {}) => h("input", { name: key, value: filters[key], ...attrs });
  const names = [...new Set(data.namespaces.flatMap((ns) =>
    !filters.namespace || ns.name === filters.namespace ? ns.handlers.map((x) => x.name) : []))];
  const form = h("form", { class: "filters", id: "task-filters", onsubmit: (e) => {
      e.preventDefault();
      const f = Object.fromEntries(new FormData(e.target).entries());
      ctx.navigate(hashFor({ ...Object.fromEntries(FILTERS.map((k) => [k, f[k]])), first: f.first }));
    } },
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

  const rows = conn.edges.map(({ node }) => h("tr", { dataset: { taskId: node.id } },
    h("td", {}, link(`#/tasks/${node.id}`, h("code", {}, node.id.slice(0, 8)))),
    h("td", {}, node.fullName),
    h("td", {}, badge(node.status)),
    h("td", {}, when(node.createdAt)),
    h("td", {}, when(node.completedAt || node.updatedAt))));
  const base = { ...filters, first };
  const prev = trail.length ? hashFor(base, { after: trail[trail.length - 1] === "-" ? "" : trail[trail.length - 1],
                                              trail: trail.slice(0, -1).join(",") }) : null;
  const next = conn.pageInfo.hasNextPage
    ? hashFor(base, { after: conn.pageInfo.endCursor, trail: [...trail, after || "-"].join(",") }) : null;
  const page = trail.length + 1;
  const pages = Math.max(1, Math.ceil(conn.totalCount / first));

  clear(view,
    h("h1", {}, "Tasks"),
    form,
    conn.edges.length
      ? h("table", { class: "data", id: "task-table" },
          h("thead", {}, h("tr", {}, ["task", "handler", "status", "created", "last change"].map((c) => h("th", {}, c)))),
          h("tbody", {}, rows))
      : h("p", { class: "muted", id: "no-tasks" }, "No task matches these filters."),
    h("div", { class: "pager" },
      h("button", { id: "prev-page", disabled: !prev, onclick: () => prev && ctx.navigate(prev) }, "← Previous"),
      h("span", { class: "muted" }, `page ${page} of ${pages} · ${conn.totalCount} task${conn.totalCount === 1 ? "" : "s"}`),
      h("button", { id: "next-page", disabled: !next, onclick: () => next && ctx.navigate(next) }, "Next →")));
}
