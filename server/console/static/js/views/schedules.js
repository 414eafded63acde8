// The schedules page: every cron schedule with its handler, cron, time zone and next fire time
// (absolute and "in N s"), and a Pause / Resume button per row that calls the GraphQL
// mutation and says how it went. Refreshes every few seconds so next fire times move.
import { gql, unwrap } from "../api.js";
import { clear, errorBox, h, when } from "../dom.js";
import { describe, toast } from "../toast.js";

const FIELDS = "id name namespace handler version cron timezone catchUp paused nextFireAt source";
const LIST = `query Schedules { schedules { ${FIELDS} } }`;
const COMMAND = (name) => `mutation($id: ID!) { ${name}(id: $id) { __typename
  ... on Schedule { ${FIELDS} } ... on Error { code message } } }`;
const POLL_MS = 5000;

/** "in 45 s", "in 28 min", "in 3 h", "in 2 d": how long until a next fire time. */
function until(iso, now = Date.now()) {
  const s = (new Date(iso).getTime() - now) / 1000;
  if (Number.isNaN(s)) return "";
  if (s <= 0) return "due now";
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]]) {
    if (s >= size) return `in ${Math.floor(s / size)} ${unit}`;
  }
  return `in ${Math.ceil(s)} s`;
}

export async function render(view, ctx) {
  const table = h("tbody", {});
  const draw = (schedules) => {
    if (!schedules.length) {
      clear(table, h("tr", {}, h("td", { colspan: 7, class: "muted" },
        "No schedules yet: declare `schedules:` in a handler file, or POST /tasker/schedules.")));
      return;
    }
    clear(table, ...schedules.map((s) => h("tr", { dataset: { scheduleId: s.id } },
      h("td", {}, h("code", { title: s.id }, s.name)),
      h("td", {}, `${s.namespace}.${s.handler}${s.version ? `@${s.version}` : ""}`),
      h("td", {}, h("code", {}, s.cron)),
      h("td", {}, s.timezone),
      h("td", { class: "next-fire", title: s.nextFireAt },
        s.paused ? h("span", { class: "muted" }, "paused") : `${when(s.nextFireAt)} (${until(s.nextFireAt)})`),
      h("td", {}, s.catchUp.toLowerCase(), s.source === "yaml" ? h("span", { class: "muted" }, " · yaml") : ""),
      h("td", {}, h("button", { type: "button", class: "small", dataset: { action: s.paused ? "resume" : "pause" },
        onclick: () => command(s.paused ? "resumeSchedule" : "pauseSchedule", s) },
        s.paused ? "Resume" : "Pause")))));
  };
  const refresh = async () => {
    const data = await gql(LIST);
    if (ctx.current()) draw(data.schedules);
  };
  const command = async (name, schedule) => {
    try {
      const result = unwrap((await gql(COMMAND(name), { id: schedule.id }))[name]);
      toast(`${schedule.name}: ${result.paused ? "paused" : "resumed"}.`, "ok");
      await refresh();
    } catch (err) {
      toast(describe(err), "error");
    }
  };
  clear(view,
    h("h1", {}, "Schedules"),
    h("p", { class: "muted" }, "Cron schedules fire one task per tick, however many servers run. ",
      "Times are shown in your browser's time zone."),
    h("table", { class: "list", id: "schedules" },
      h("thead", {}, h("tr", {}, ["Name", "Handler", "Cron", "Time zone", "Next fire", "Catch-up", ""]
        .map((t) => h("th", {}, t)))),
      table));
  await refresh();
  const timer = setInterval(() => refresh().catch((err) => {
    if (ctx.current()) clear(table, h("tr", {}, h("td", { colspan: 7 }, errorBox(err, "Could not refresh:"))));
  }), POLL_MS);
  ctx.onLeave(() => clearInterval(timer));
}
