// 监察统计: choose period, grouping and dates; draw the figures as SVG charts and a
// table; the CSV link follows the same choice.

import { get } from "./api.js";
import { $, el, say } from "./ui.js";
import { COLOURS, bars, lines, shares } from "./charts.js";

const GROUP_NAMES = { outlet: "网点", department: "部门", matter: "事项" };
const COLUMNS = [
  ["sessions", "会话数"],
  ["accepted", "已接入"],
  ["timed_out", "等待超时"],
  ["cancelled", "已取消"],
  ["wait_p50", "等待P50", "time"],
  ["wait_p90", "等待P90", "time"],
  ["duration_p50", "审办P50", "time"],
  ["duration_p90", "审办P90", "time"],
  ["approved", "通过"],
  ["rejected", "不予受理"],
  ["supplement", "补正"],
  ["ratings", "评价数"],
  ["satisfaction_rate", "满意率", "rate"],
  ["awaiting_verify", "待回访核实"],
  ["awaiting_rectify", "待整改"],
  ["followups_overdue", "逾期未办"],
];

const form = $("#stats-form");

function minutes(seconds) {
  return seconds === null ? null : seconds / 60;
}

function show(value, kind) {
  if (value === null || value === undefined) return "—";
  if (kind === "time") return value < 60 ? `${Math.round(value)} 秒` : `${(value / 60).toFixed(1)} 分`;
  if (kind === "rate") return `${(value * 100).toFixed(1)}%`;
  return String(value);
}

function isoDaysBefore(iso, days) {
  const date = new Date(`${iso}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() - days);
  return date.toISOString().slice(0, 10);
}

function params() {
  const data = new FormData(form);
  const query = new URLSearchParams();
  for (const name of ["period", "group", "from", "to"]) {
    const value = String(data.get(name) ?? "");
    if (value) query.set(name, value);
  }
  return query;
}

function label(bucket, period) {
  return period === "day" ? bucket.slice(5) : `${bucket.slice(5)}周`;
}

function totals(total) {
  const tiles = [
    ["会话数", show(total.sessions)],
    ["等待超时", show(total.timed_out)],
    ["等待时长P50/P90", `${show(total.wait_p50, "time")} / ${show(total.wait_p90, "time")}`],
    ["审办时长P50/P90", `${show(total.duration_p50, "time")} / ${show(total.duration_p90, "time")}`],
    ["通过/不予受理/补正", `${total.approved} / ${total.rejected} / ${total.supplement}`],
    ["满意率", show(total.satisfaction_rate, "rate")],
    ["差评待回访/整改", `${total.awaiting_verify} / ${total.awaiting_rectify}`],
  ];
  $("#stats-totals").replaceChildren(
    ...tiles.map(([name, value]) => el("div", { class: "total" }, el("span", { class: "value" }, value), el("span", {}, name))),
  );
}

function table(found) {
  const head = el("tr", {}, el("th", {}, found.period === "day" ? "日期" : "周（起始周一）"), el("th", {}, GROUP_NAMES[found.group]), ...COLUMNS.map(([, name]) => el("th", {}, name)));
  const line = (bucket, group, figures, cls) =>
    el("tr", { class: cls }, el("td", {}, bucket), el("td", {}, group), ...COLUMNS.map(([key, , kind]) => el("td", {}, show(figures[key], kind))));
  const body = [
    ...found.rows.map((r) => line(r.bucket, r.group_name, r)),
    ...found.by_group.map((r) => line("合计", r.group_name, r, "subtotal")),
    line("合计", "全部", found.total, "total"),
  ];
  $("#stats-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}

function draw(found) {
  const labels = found.by_bucket.map((b) => label(b.bucket, found.period));
  bars($("#chart-sessions"), labels, [
    { name: "会话数", colour: COLOURS.primary, values: found.by_bucket.map((b) => b.sessions) },
    { name: "等待超时", colour: COLOURS.alert, values: found.by_bucket.map((b) => b.timed_out) },
  ]);
  lines($("#chart-wait"), labels, [
    { name: "P50", colour: COLOURS.primary, values: found.by_bucket.map((b) => minutes(b.wait_p50)) },
    { name: "P90", colour: COLOURS.second, values: found.by_bucket.map((b) => minutes(b.wait_p90)) },
  ], (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)));
  $("#chart-groups-title").textContent = `满意率（按${GROUP_NAMES[found.group]}）`;
  shares($("#chart-satisfaction"), found.by_group.map((g) => ({ name: g.group_name, value: g.satisfaction_rate })), COLOURS.good);
}

async function load() {
  const query = params();
  $("#stats-csv").href = `/api/v1/supervision/stats.csv?${query}`;
  try {
    const found = await get(`/api/v1/supervision/stats?${query}`);
    say($("#stats-error"), "");
    totals(found.total);
    draw(found);
    table(found);
    form.dataset.loaded = `${found.period}/${found.group}/${found.from}/${found.to}`;
  } catch (error) {
    say($("#stats-error"), error.message);
  }
}

function defaultFrom() {
  const period = form.elements.period.value;
  const to = form.elements.to.value || form.dataset.today;
  const days = Number(period === "day" ? form.dataset.dayDays : form.dataset.weekDays);
  form.elements.from.value = isoDaysBefore(to, days - 1);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
form.elements.period.addEventListener("change", () => {
  defaultFrom();
  load();
});
form.elements.group.addEventListener("change", load);
defaultFrom();
load();
