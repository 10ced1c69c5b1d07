// Live supervision (/supervision/live): waiting and live sessions in the auditor's scope,
// listed from the API and refreshed every few seconds; 隐藏旁听 opens one hidden.

import { get } from "./api.js";
import { $, el, say } from "./ui.js";

const status = $("#live-status");
const alertBox = $("#alert");
const table = $("#live-sessions");
const body = table.querySelector("tbody");
const empty = $("#live-empty");
const refreshMs = Number(status.dataset.refreshSeconds || "5") * 1000;

function people(session) {
  if (!session.on_this_node) return el("span", { class: "hint" }, "—");
  if (session.participants.length === 0) return el("span", { class: "hint" }, "无人在线");
  return el(
    "ul",
    { class: "people compact" },
    ...session.participants.map((p) =>
      el(
        "li",
        { "data-state": p.state },
        el("span", { class: "name" }, p.display_name),
        el("span", { class: "hint" }, p.role_name + (p.state === "reconnecting" ? "（重连中）" : "")),
      ),
    ),
  );
}

function row(session) {
  const watch = session.can_watch
    ? el("a", { class: "button small", href: `/sessions/${session.id}` }, "隐藏旁听")
    : el("span", { class: "hint" }, "待接入");
  const recording = session.recording;
  return el(
    "tr",
    { "data-session-id": session.id, "data-case-no": session.case_no },
    el("td", { class: "nowrap" }, el("a", { href: `/cases/${session.case_no}` }, session.case_no)),
    el("td", {}, session.matter),
    el("td", {}, session.outlet),
    el("td", {}, session.department),
    el("td", {}, el("span", { class: `status session-${session.state}` }, session.state_name)),
    el("td", { class: "nowrap" }, session.waiting_text),
    el("td", { class: "nowrap" }, session.duration_text),
    el("td", {}, people(session)),
    el(
      "td",
      { class: `nowrap recording-${recording.state}` },
      recording.tracks ? `${recording.name}（${recording.tracks} 路）` : recording.name,
    ),
    el("td", {}, watch),
  );
}

async function refresh() {
  try {
    const data = await get("/api/v1/supervision/live");
    body.replaceChildren(...data.sessions.map(row));
    table.hidden = data.sessions.length === 0;
    empty.hidden = data.sessions.length !== 0;
    const live = data.sessions.filter((s) => s.state === "live").length;
    const at = data.at.slice(11, 19);
    say(alertBox, "");
    status.textContent = `进行中 ${live} 个，排队 ${data.sessions.length - live} 个；更新于 ${at}`;
  } catch (error) {
    say(alertBox, error.message);
  } finally {
    setTimeout(refresh, refreshMs);
  }
}

refresh();
