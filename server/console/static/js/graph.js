// Step graphs: Mermaid flowcharts coloured by step status, or (when the vendored Mermaid
// file is absent) a plain layered SVG drawn here, so the console never depends on a CDN.
import { h } from "./dom.js";

const COLORS = {
  PENDING: ["#eef0f3", "#9aa3af"], IN_PROGRESS: ["#fff1d0", "#e0a21c"],
  COMPLETE: ["#dff3e7", "#3fa66a"], ERROR: ["#fbe0e0", "#d64545"],
  CANCELLED: ["#f1e4f7", "#9b59b6"], RESOLVED_MANUALLY: ["#dcf2f5", "#2aa5b5"],
  TEMPLATE: ["#eef3ff", "#2f5bd3"],
  SKIPPED: ["#f5f5f5", "#9e9e9e"],  // complete without running (a false run_if): dashed
};

let loading = null;
function loadMermaid() {
  if (window.mermaid) return Promise.resolve(window.mermaid);
  const url = window.TASKER_MERMAID_URL;
  if (!url) return Promise.resolve(null);
  loading = loading || new Promise((resolve) => {
    const script = document.createElement("script");
    script.src = url;
    script.onload = () => {
      window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral",
                                  flowchart: { curve: "basis" } });
      resolve(window.mermaid);
    };
    script.onerror = () => resolve(null);  // drawn by hand instead
    document.head.append(script);
  });
  return loading;
}

const MERMAID_MAX_NODES = 40;

// mermaid.render is not re-entrant: one drawing at a time.
let queue = Promise.resolve();
let counter = 0;

/** Mermaid source for nodes [{name, status}] and edges [[from, to]]. */
export function mermaidSource(nodes, edges) {
  const ids = new Map(nodes.map((n, i) => [n.name, `s${i}`]));
  const lines = ["flowchart TD"];
  for (const node of nodes) {
    const label = node.name.replace(/"/g, "#quot;");
    lines.push(`  ${ids.get(node.name)}["${label}"]`);
  }
  for (const [from, to] of edges) {
    if (ids.has(from) && ids.has(to)) lines.push(`  ${ids.get(from)} --> ${ids.get(to)}`);
  }
  for (const [status, [fill, stroke]] of Object.entries(COLORS)) {
    const dashed = status === "SKIPPED" ? ",stroke-dasharray:5 5,color:#757575" : "";
    lines.push(`  classDef ${status.toLowerCase()} fill:${fill},stroke:${stroke},stroke-width:2px${dashed}`);
  }
  for (const node of nodes) lines.push(`  class ${ids.get(node.name)} ${(node.status || "TEMPLATE").toLowerCase()}`);
  return lines.join("\n");
}

/** Draw the graph into `container` (replacing what was there). */
export function drawGraph(container, nodes, edges) {
  const source = mermaidSource(nodes, edges);
  if (container.dataset.source === source) return queue;  // nothing changed
  container.dataset.source = source;
  queue = queue.then(async () => {
    // Mermaid lays out a big graph in one long task (1.5 s for 200 steps) that freezes the
    // page; past a few dozen steps the plain layered drawing is quicker and as readable.
    const mermaid = nodes.length <= MERMAID_MAX_NODES ? await loadMermaid() : null;
    if (container.dataset.source !== source) return;  // a newer drawing is on its way
    if (mermaid) {
      try {
        const { svg } = await mermaid.render(`graph-${++counter}`, source);
        container.innerHTML = svg;  // Mermaid's own output, sanitised by securityLevel=strict
        container.dataset.renderer = "mermaid";
        container.dataset.drawn = source;
        return;
      } catch (err) {
        console.warn("mermaid failed, drawing by hand", err);
      }
    }
    container.replaceChildren(layered(nodes, edges));
    container.dataset.renderer = "svg";
    container.dataset.drawn = source;
  });
  return queue;
}

/** A small drawing for lists (the catalogue): the same layered layout, no Mermaid. */
export function miniGraph(nodes, edges) {
  const drawing = layered(nodes, edges, { horizontal: true, W: 100, H: 26, GX: 14, GY: 8 });
  drawing.classList.add("mini-graph");
  return drawing;
}

/** A top-down layered drawing: each node one row below its deepest parent. */
function layered(nodes, edges, { horizontal = false, W = 170, H = 36, GX = 24, GY = 40 } = {}) {
  const parents = new Map(nodes.map((n) => [n.name, []]));
  for (const [from, to] of edges) if (parents.has(to)) parents.get(to).push(from);
  const depth = new Map();
  const depthOf = (name, seen = new Set()) => {
    if (depth.has(name)) return depth.get(name);
    if (seen.has(name)) return 0;
    seen.add(name);
    const d = Math.max(-1, ...parents.get(name).map((p) => depthOf(p, seen))) + 1;
    depth.set(name, d);
    return d;
  };
  nodes.forEach((n) => depthOf(n.name));
  const rows = [];
  for (const n of nodes) (rows[depth.get(n.name)] ||= []).push(n);
  const widest = Math.max(...rows.map((r) => r.length));
  const pos = new Map();
  let width, height;
  if (horizontal) {  // columns by depth, left to right
    width = rows.length * (W + GX) + GX;
    height = widest * (H + GY) + GY;
    rows.forEach((row, x) => row.forEach((n, y) => {
      const offset = (height - row.length * (H + GY) + GY) / 2;
      pos.set(n.name, { x: GX + x * (W + GX), y: offset + y * (H + GY) });
    }));
  } else {  // rows by depth, top to bottom
    width = widest * (W + GX) + GX;
    height = rows.length * (H + GY) + GX;
    rows.forEach((row, y) => row.forEach((n, x) => {
      const offset = (width - row.length * (W + GX) + GX) / 2;
      pos.set(n.name, { x: offset + x * (W + GX), y: GX + y * (H + GY) });
    }));
  }
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  };
  // The natural size as width: small graphs are not blown up, wide ones shrink to fit (CSS).
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, role: "img",
    "aria-label": `Step graph: ${nodes.length} steps${edges.length ? `, ${edges.map(([a, b]) => `${a} → ${b}`).join(", ")}` : ""}` });
  for (const [from, to] of edges) {
    const a = pos.get(from), b = pos.get(to);
    if (!a || !b) continue;
    const line = horizontal ? { x1: a.x + W, y1: a.y + H / 2, x2: b.x, y2: b.y + H / 2 }
                            : { x1: a.x + W / 2, y1: a.y + H, x2: b.x + W / 2, y2: b.y };
    svg.append(el("line", { ...line, stroke: "#9aa3af", "stroke-width": 1.5 }));
  }
  for (const n of nodes) {
    const p = pos.get(n.name);
    const [fill, stroke] = COLORS[n.status || "TEMPLATE"] || COLORS.TEMPLATE;
    const g = el("g", { class: "node", "data-step": n.name });
    const dash = n.status === "SKIPPED" ? { "stroke-dasharray": "5 5" } : {};
    g.append(el("rect", { x: p.x, y: p.y, width: W, height: H, rx: 6, fill, stroke, "stroke-width": 2, ...dash }));
    const text = el("text", { x: p.x + W / 2, y: p.y + H / 2 + 4, "text-anchor": "middle", "font-size": 12 });
    const room = Math.floor(W / 7.6);  // ~7.5 px per character at 12 px
    text.textContent = n.name.length > room ? `${n.name.slice(0, room - 1)}…` : n.name;
    const title = el("title", {});
    title.textContent = n.name;
    g.append(title, text);
    svg.append(g);
  }
  return h("div", { class: "svg-graph" }, svg);
}
