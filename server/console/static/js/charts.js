// Hand-written SVG charts (no chart library to vendor): a gauge for the health score, bar
// charts for durations, rates and error counts, and columns per hour. Labels are text nodes,
// never markup. Charts are drawn at their natural size (their panel scrolls when narrower),
// so 12 px text stays 12 px; every bar carries its exact value as a tooltip (<title>).

const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function svg(width, height, label) {
  return el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label });
}

function tip(node, text) {
  node.append(el("title", {}, text));
  return node;
}

export function scoreColor(score) {
  return score >= 90 ? "#3fa66a" : score >= 70 ? "#e0a21c" : "#d64545";
}

/** A half-circle gauge from 0 to 100. */
export function gauge(score, label = "System health score") {
  const s = svg(240, 150, `${label}: ${score}`);
  const cx = 120, cy = 125, r = 95;
  const arc = (from, to) => {
    const a0 = Math.PI * (1 - from / 100), a1 = Math.PI * (1 - to / 100);
    const p = (a) => `${cx + r * Math.cos(a)} ${cy - r * Math.sin(a)}`;
    return `M ${p(a0)} A ${r} ${r} 0 0 1 ${p(a1)}`;
  };
  const value = Math.max(0, Math.min(100, Number(score) || 0));
  s.append(el("path", { d: arc(0, 100), stroke: "#e3e6eb", "stroke-width": 22, fill: "none" }));
  if (value > 0) s.append(el("path", { d: arc(0, value), stroke: scoreColor(value), "stroke-width": 22, fill: "none" }));
  s.append(el("text", { x: cx, y: cy - 10, "text-anchor": "middle", "font-size": 34, "font-weight": 700 }, String(score ?? "—")));
  s.append(el("text", { x: cx, y: cy + 16, "text-anchor": "middle", "font-size": 12, fill: "#6b7280" }, label));
  s.dataset.chart = "gauge";
  return s;
}

/** Horizontal bars: items [{label, value, note?}], `format(value)` for the value text. */
export function hbars(items, { format = String, color = "#2f5bd3", label = "chart", unit = "" } = {}) {
  const rowH = 24, labelW = 240, barW = 220, width = labelW + barW + 210;
  const s = svg(width, Math.max(rowH * items.length + 10, 40), label);
  s.dataset.chart = "bars";
  const max = Math.max(...items.map((i) => Number(i.value) || 0), 1);
  items.forEach((item, i) => {
    const y = 5 + i * rowH;
    const w = Math.max(2, (Number(item.value) || 0) / max * barW);
    const name = String(item.label);
    const short = name.length > 34 ? `${name.slice(0, 33)}…` : name;
    const text = el("text", { x: labelW - 8, y: y + 16, "text-anchor": "end" }, short);
    text.append(el("title", {}, name));
    s.append(text);
    s.append(tip(el("rect", { x: labelW, y: y + 4, width: w, height: rowH - 10, rx: 3, fill: item.color || color }),
      `${name}: ${item.value ?? "no data"}${unit ? ` ${unit}` : ""}${item.note ? ` (${item.note})` : ""}`));
    s.append(el("text", { x: labelW + w + 6, y: y + 16 }, `${format(item.value)}${item.note ? ` · ${item.note}` : ""}`));
  });
  if (!items.length) s.append(el("text", { x: 10, y: 24, fill: "#6b7280" }, "No data in this period"));
  return s;
}

/** Vertical bars for a few categories, e.g. p50/p95/p99 or completion rate per window. */
export function vbars(items, { format = String, color = "#2f5bd3", max = null, label = "chart", unit = "" } = {}) {
  const width = 360, height = 190, base = 160, top = 30;
  const s = svg(width, height, label);
  if (unit) s.append(el("text", { x: 0, y: 12, fill: "#6b7280", class: "unit" }, unit));
  s.dataset.chart = "columns";
  const scale = max ?? Math.max(...items.map((i) => Number(i.value) || 0), 1);
  const slot = width / Math.max(items.length, 1);
  s.append(el("line", { x1: 0, y1: base, x2: width, y2: base, class: "axis", stroke: "#e3e6eb" }));
  items.forEach((item, i) => {
    const known = item.value !== null && item.value !== undefined && Number.isFinite(Number(item.value));
    const v = Number(item.value);
    const hgt = known ? Math.max(2, (v / scale) * (base - top)) : 0;
    const x = i * slot + slot * 0.25;
    if (hgt) s.append(tip(el("rect", { x, y: base - hgt, width: slot * 0.5, height: hgt, rx: 3, fill: item.color || color }),
      `${item.label}: ${known ? v : "no data"}${unit && known ? ` (${unit})` : ""}`));
    s.append(el("text", { x: x + slot * 0.25, y: base - hgt - 6, "text-anchor": "middle" },
      known ? format(v) : "no data"));
    s.append(el("text", { x: x + slot * 0.25, y: base + 18, "text-anchor": "middle", fill: "#6b7280" }, String(item.label)));
  });
  return s;
}

/** Completed and failed tasks per hour: [{hour (ISO), completed, failed}], oldest first. */
export function hourly(rows, { label = "tasks per hour" } = {}) {
  const slotW = Math.max(14, Math.min(40, Math.floor(600 / Math.max(rows.length, 1))));
  const left = 40, base = 170, top = 28, width = left + slotW * rows.length + 10, height = 215;
  const s = svg(Math.max(width, 300), height, label);
  s.dataset.chart = "hourly";
  const max = Math.max(1, ...rows.map((r) => Math.max(r.completed, r.failed)));
  s.append(el("text", { x: 0, y: 12, fill: "#6b7280", class: "unit" }, "tasks per hour (local time)"));
  s.append(el("line", { x1: left, y1: base, x2: width, y2: base, stroke: "#c9ced6" }));
  for (const v of [0, max]) {
    const y = base - (v / max) * (base - top);
    s.append(el("text", { x: left - 6, y: y + 4, "text-anchor": "end", fill: "#6b7280" }, String(v)));
  }
  const every = Math.ceil(rows.length / 8);
  rows.forEach((r, i) => {
    const x = left + i * slotW;
    const hour = new Date(r.hour);
    const name = `${hour.toLocaleDateString()} ${String(hour.getHours()).padStart(2, "0")}:00`;
    const bar = (value, dx, fill, what) => {
      const hgt = (value / max) * (base - top);
      s.append(tip(el("rect", { x: x + dx, y: base - hgt, width: slotW / 2 - 2, height: Math.max(hgt, value ? 2 : 0),
        fill, "data-value": value, "data-kind": what }), `${name}: ${value} ${what}`));
    };
    bar(r.completed, 1, "#3fa66a", "completed");
    bar(r.failed, slotW / 2, "#d64545", "failed");
    if (i % every === 0)
      s.append(el("text", { x: x + slotW / 2, y: base + 18, "text-anchor": "middle", fill: "#6b7280" },
        `${String(hour.getHours()).padStart(2, "0")}h`));
  });
  [["completed", "#3fa66a"], ["failed", "#d64545"]].forEach(([what, fill], i) => {
    const x = left + i * 110;
    s.append(tip(el("rect", { x, y: base + 28, width: 12, height: 12, fill }), `${what} tasks`));
    s.append(el("text", { x: x + 18, y: base + 38 }, what));
  });
  return s;
}
