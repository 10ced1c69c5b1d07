// The live screen (/sessions/{id}): waiting room for the clerk, then the call —
// stage and tiles, document viewer, controls, participants, chat, quality, banners,
// review actions (checklist, decision, the clerk's rating at the end: actions.js).
// On a reload it simply joins again: fresh token, fresh peer connection.

import { RatingForm, ReviewPanel } from "./actions.js";
import { Call, TERMINAL } from "./call.js";
import { Chat } from "./chat.js";
import { DeviceStatus } from "./devicestatus.js";
import { listDevices, loadChoices, mediaUnavailable, openSources, resolveChoices } from "./devices.js";
import { Feeds } from "./feeds.js";
import { bindInvite } from "./invite.js";
import { QualityMeter } from "./stats.js";
import { Stills } from "./stills.js";
import { $, duration, el, ROLE_NAMES, say } from "./ui.js";
import { Viewer } from "./viewer.js";

const PUBLISH = { clerk: ["face", "document", "audio"], approver: ["face", "audio"], auditor: [] };
const STATE_NAMES = {
  waiting: "排队等待中",
  live: "审办进行中",
  ended: "已结束",
  cancelled: "已取消",
  timed_out: "等待超时",
};
const ENDED_TITLES = {
  ended: "审办会话已结束",
  cancelled: "会话已取消",
  timed_out: "会话等待超时",
  hung_up: "您已挂断",
  replaced: "已在其他窗口打开",
  refused: "无法加入会话",
  logged_out: "登录已失效",
};
const LOGIN_REDIRECT_MS = 4000;
const END_REASONS = {
  ended_by_approver: "审批人员已结束本次审办。",
  all_left: "参会人员均已离开，审办会话已结束。",
  cancelled_by_clerk: "窗口人员已取消本次审办。",
};

const root = $("#session");
const { sessionId, role, me } = root.dataset;
const alertBox = $("#alert");
const devices = new DeviceStatus($("#device-status"));
const viewer = new Viewer($("#viewer-tools"), $("#viewer-zoom"));
const feeds = new Feeds({
  stage: $("#stage"),
  stageEmpty: $("#stage-empty"),
  tiles: $("#tiles"),
  sinks: $("#audio-sinks"),
  viewer,
  onAudioBlocked: () => {
    $("#unmute-remote").hidden = false;
  },
});
let call = null;
let present = []; // the latest participants list
let stateMessage = $("#state-message").textContent;
// the header says who is there: the other side's presence, in a live session
const OTHER_SIDE = {
  clerk: { role: "approver", away: "审批人员网络中断，正在重连…", gone: "审批人员已离开本次审办。" },
  approver: { role: "clerk", away: "窗口人员网络中断，正在重连…", gone: "窗口人员已离开本次审办。" },
};

function showHeader() {
  const other = OTHER_SIDE[role];
  let text = stateMessage;
  if (other && root.dataset.state === "live" && call && !call.done) {
    const there = present.filter((p) => p.role === other.role);
    if (!there.length) text = other.gone;
    else if (there.every((p) => p.state === "reconnecting")) text = other.away;
  }
  $("#state-message").textContent = text;
}

function showPresence(notice) {
  const banner = $("#presence-banner");
  if (!notice) {
    banner.hidden = true;
    return;
  }
  $("#presence-text").textContent = notice.message;
  const requeue = $("#requeue");
  if (requeue) {
    requeue.hidden = notice.code !== "approvers_left";
    requeue.disabled = false;
  }
  banner.hidden = false;
}

function showState(state, message) {
  const pill = $("#state-name");
  pill.textContent = STATE_NAMES[state] ?? state;
  pill.className = `status session-${state}`;
  if (message) stateMessage = message;
  if (state === "waiting" && root.dataset.state === "live") {
    root.dataset.createdAt = new Date().toISOString(); // back in the queue: wait anew
  }
  root.dataset.state = state;
  if (state !== "live") showPresence(null);
  showHeader();
  $("#waiting").hidden = state !== "waiting";
  feeds.setWaiting(state === "waiting");
}

/** The closing card; ``kind``: a final state, or hung_up / replaced / refused. */
function showEnded(kind, message, endReason = "") {
  $("#live").hidden = true;
  $("#peer-banner").hidden = true;
  $("#self-banner").hidden = true;
  $("#presence-banner").hidden = true;
  $("#ended").hidden = false;
  $("#ended-title").textContent = ENDED_TITLES[kind] ?? ENDED_TITLES.ended;
  $("#ended-message").textContent = END_REASONS[endReason] ?? message ?? "";
  $("#rejoin").hidden = kind !== "hung_up" && kind !== "replaced";
  root.dataset.finished = kind;
}

function showPeople(list) {
  present = list;
  const other = OTHER_SIDE[role];
  if (other && list.some((p) => p.role === other.role)) showPresence(null); // back again
  showHeader();
  feeds.setPeople(list);
  const people = $("#people");
  people.replaceChildren(
    ...list.map((p) => {
      const flags = [];
      if (p.state === "reconnecting") flags.push("正在重连");
      if (p.audio_on === false) flags.push("已静音");
      if (p.face_on === false) flags.push("摄像头关闭");
      const name = p.participant === me ? `${p.display_name}（我）` : p.display_name;
      return el(
        "li",
        { "data-participant": p.participant, "data-state": p.state },
        el("span", { class: "name" }, name),
        el("span", { class: "hint" }, ROLE_NAMES[p.role] ?? p.role),
        flags.length ? el("span", { class: "flags" }, flags.join("，")) : null,
      );
    }),
  );
  const away = list.some((p) => p.participant !== me && p.state === "reconnecting");
  $("#peer-banner").hidden = !away;
}

function loginUrl() {
  return `/login?next=${encodeURIComponent(location.pathname)}`;
}

function tickWaiting() {
  const since = Date.parse(root.dataset.createdAt);
  const timer = setInterval(() => {
    if (root.dataset.state !== "waiting") return;
    if (Number.isNaN(since)) return;
    $("#waited").textContent = duration((Date.now() - since) / 1000);
  }, 500);
  return () => clearInterval(timer);
}

function bindControls(chat) {
  const toggles = [
    ["#toggle-audio", "audio", "静音", "取消静音"],
    ["#toggle-face", "face", "关闭摄像头", "开启摄像头"],
    ["#toggle-document", "document", "暂停高拍仪", "恢复高拍仪"],
  ];
  for (const [selector, source, offLabel, onLabel] of toggles) {
    const button = $(selector);
    if (!button) continue;
    button.disabled = !call.tracks.has(source);
    button.addEventListener("click", () => {
      const on = !call.media[source];
      call.setMedia(source, on);
      button.textContent = on ? offLabel : onLabel;
      button.setAttribute("aria-pressed", String(!on));
      feeds.setLocalOff(source, !on);
    });
  }
  $("#hangup").addEventListener("click", () => call.hangup());
  $("#requeue")?.addEventListener("click", (event) => {
    event.target.disabled = call.requeue();
  });
  const dialog = $("#end-dialog");
  $("#end")?.addEventListener("click", () => dialog.showModal());
  dialog?.addEventListener("close", () => {
    if (dialog.returnValue === "confirm") call.end();
  });
  $("#cancel")?.addEventListener("click", async (event) => {
    event.target.disabled = true;
    try {
      await call.cancel();
    } catch (error) {
      say(alertBox, error.message);
      event.target.disabled = false;
    }
  });
  $("#unmute-remote").addEventListener("click", async (event) => {
    try {
      await feeds.resumeAudio();
      event.target.hidden = true;
    } catch (error) {
      say(alertBox, `无法播放声音：${error.message}`);
    }
  });
  bindInvite(sessionId, $("#notice"));
  chat.enable(false);
}

async function localTracks() {
  const sources = PUBLISH[role] ?? [];
  if (!sources.length) return new Map();
  const why = mediaUnavailable();
  if (why) {
    devices.set("devices", why);
    return new Map();
  }
  let choices = loadChoices();
  if (sources.some((source) => !choices[source])) {
    // first time on this computer (no start page before): pick as the start page does;
    // if listing fails, each source is opened on its default device and reports itself
    try {
      choices = resolveChoices(await listDevices(), choices);
    } catch (error) {
      console.warn("devices not listed", error);
    }
  }
  const { tracks, failed } = await openSources(sources, choices);
  for (const [source, error] of failed) devices.failed(source, error);
  devices.watch(tracks);
  for (const [source, track] of tracks) {
    if (track.kind === "video") feeds.showLocal(source, track);
  }
  return tracks;
}

const rating = new RatingForm(sessionId);

async function main() {
  const state = root.dataset.state;
  if (TERMINAL.has(state)) {
    showEnded(state, $("#state-message").textContent, root.dataset.endReason);
    if (state === "ended") await rating.show();
    return;
  }
  showState(state);
  if (role === "auditor" && state === "waiting") {
    showEnded("refused", "会话尚未开始，审批人员接入后方可旁听，请稍后刷新页面。");
    return;
  }
  const stopTicking = tickWaiting();
  call = new Call(sessionId, await localTracks());
  const chat = new Chat($("#chat-log"), $("#chat-form"), me, (text) => call.chat(text));
  bindControls(chat);
  const stills = new Stills({ sessionId, role, call, onProblem: (text) => say(alertBox, text) });
  const meter = new QualityMeter();
  const sampler = setInterval(async () => {
    const pc = call.pc;
    if (!pc) return;
    try {
      const sample = await meter.sample(pc);
      if (pc === call.pc) feeds.quality(sample);
    } catch (error) {
      console.warn("getStats failed", error); // the connection closed meanwhile
    }
  }, 1000);

  const panel = new ReviewPanel(sessionId, alertBox);
  call.on("joined", () => {
    say(alertBox, "");
    chat.enable(!call.hidden);
    panel.load().catch((error) => say(alertBox, error.message));
    stills.load().catch((error) => say(alertBox, `无法载入照片：${error.message}`));
  });
  call.on("chat_history", (messages) => chat.replace(messages));
  call.on("marked", (mark) => panel.addMark(mark));
  call.on("decided", (decision) => panel.setDecision(decision));
  let endReason = "";
  call.on("state", (m) => {
    endReason = m.reason;
    showState(m.state, m.message);
    stills.enable(m.state === "live");
  });
  call.on("still_requested", (m) => stills.requested(m));
  call.on("still_added", (still) => stills.add(still));
  call.on("participants", showPeople);
  call.on("slots", (slots) => feeds.update(slots));
  call.on("peer", (offer) => feeds.bind(offer.slots, offer.publish));
  call.on("chat", (m) => chat.add(m));
  call.on("problem", (m) => say(alertBox, m.message));
  call.on("notice", showPresence);
  call.on("link", ({ state: link }) => {
    $("#self-banner").hidden = link !== "reconnecting";
    if (link === "reconnecting") {
      chat.enable(false);
      stills.enable(false);
    }
  });
  call.on("finished", ({ reason, message }) => {
    clearInterval(sampler);
    stopTicking();
    devices.stop();
    showEnded(reason === "ended" && TERMINAL.has(call.state) ? call.state : reason, message, endReason);
    if (reason === "logged_out") {
      // the login that opened this page ended (logout, password changed, account disabled)
      setTimeout(() => location.assign(loginUrl()), LOGIN_REDIRECT_MS);
      return;
    }
    // the applicant rates the service once the call with the approver is over
    if (call.state === "ended" || (reason === "hung_up" && call.state === "live")) rating.show();
  });
  await call.start();
}

main().catch((error) => say(alertBox, `页面出错：${error.message}`));
