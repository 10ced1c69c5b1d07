// The approver's live queue (/queue): waiting sessions of the department pushed over a
// WebSocket, waiting times ticking, 接入 to accept; invitations to co-review (联审).

import { post, socketUrl } from "./api.js";
import { CLOSE_LOGIN_ENDED } from "./signal.js";
import { $, duration, el, say } from "./ui.js";

const RETRY_MS = [500, 1000, 2000, 4000, 8000];
const status = $("#queue-status");
const alertBox = $("#alert");
const table = $("#queue");
const body = table.querySelector("tbody");
const empty = $("#queue-empty");
const baseTitle = document.title;
let received = 0; // performance.now() when the current list arrived
let failures = 0;

async function take(item, button) {
  button.disabled = true;
  say(alertBox, "");
  const path = item.invitation_from
    ? `/api/v1/sessions/${item.session_id}/join-invitation`
    : `/api/v1/sessions/${item.session_id}/accept`;
  try {
    await post(path);
    location.assign(`/sessions/${item.session_id}`);
  } catch (error) {
    say(alertBox, error.message);
    button.disabled = false;
  }
}

function row(item) {
  const button = el("button", { type: "button", class: "small" }, item.invitation_from ? "加入联审" : "接入");
  button.addEventListener("click", () => take(item, button));
  const position = item.invitation_from ? `联审邀请（${item.invitation_from}）` : String(item.position);
  return el(
    "tr",
    { "data-session-id": item.session_id, "data-case-no": item.case_no },
    el("td", {}, position),
    el("td", { class: "mono" }, item.case_no),
    el("td", {}, item.matter),
    el("td", {}, item.applicant_name),
    el("td", {}, item.outlet),
    el("td", { class: "mono waited", "data-seconds": item.waiting_seconds }, duration(item.waiting_seconds)),
    el("td", {}, button),
  );
}

function show(items) {
  received = performance.now();
  body.replaceChildren(...items.map(row));
  table.hidden = items.length === 0;
  empty.hidden = items.length !== 0;
  const waiting = items.filter((i) => !i.invitation_from).length;
  document.title = waiting ? `（${waiting}）${baseTitle}` : baseTitle;
}

function tick() {
  const elapsed = (performance.now() - received) / 1000;
  for (const cell of body.querySelectorAll("td.waited")) {
    cell.textContent = duration(Number(cell.dataset.seconds) + elapsed);
  }
}

function connect() {
  const socket = new WebSocket(socketUrl("/api/v1/queue/ws"));
  socket.addEventListener("open", () => {
    failures = 0;
    status.textContent = "已连接，队列实时更新。";
  });
  let ended = null;
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "queue") show(message.items);
    if (message.type === "error" && message.code === "login_ended") ended = message.message;
  });
  socket.addEventListener("close", (event) => {
    if (event.code === CLOSE_LOGIN_ENDED) {
      // the login ended (logout elsewhere, password changed, account disabled): log in again
      status.textContent = "";
      say(alertBox, ended ?? "您的登录已失效，请重新登录。");
      setTimeout(() => location.assign(`/login?next=${encodeURIComponent(location.pathname)}`), 4000);
      return;
    }
    failures += 1;
    status.textContent = "队列连接中断，正在重连…";
    setTimeout(connect, RETRY_MS[Math.min(failures, RETRY_MS.length) - 1]);
  });
}

setInterval(tick, 1000);
connect();
