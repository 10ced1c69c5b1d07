// The clerk's start page (/cases/{case_no}/review): choose the face camera, the
// document camera (高拍仪) and the microphone, preview them, then start the session and
// go to its live screen, where the clerk waits in the queue. Starting needs the
// applicant's consent to recording (the text shown, a checkbox).

import { post } from "./api.js";
import {
  deviceError,
  describeTrack,
  levelMeter,
  listDevices,
  openSource,
  resolveChoices,
  saveChoices,
  watchFrames,
} from "./devices.js";
import { DeviceStatus } from "./devicestatus.js";
import { $, el, say } from "./ui.js";

const root = $("#review-start");
const alertBox = $("#alert");
const startButton = $("#start");
const open = new Map(); // source → track
let choices = {};
let stopMeter = () => {};
let stopWatch = () => {};

function fill(select, devices, chosen, fallback) {
  select.replaceChildren(
    ...devices.map((d, i) =>
      el("option", { value: d.deviceId, selected: d.deviceId === chosen }, d.label || `${fallback} ${i + 1}`),
    ),
  );
}

async function preview(source) {
  open.get(source)?.stop();
  open.delete(source);
  const info = $(`#${source}-info`);
  info.textContent = "正在打开…";
  try {
    const track = await openSource(source, choices[source]);
    open.set(source, track);
    if (source === "audio") {
      stopMeter();
      stopMeter = levelMeter(track, $("#audio-level"));
      info.textContent = track.label;
    } else {
      $(`#${source}-preview`).srcObject = new MediaStream([track]);
      info.textContent = describeTrack(track);
      if (source === "document") {
        stopWatch();
        stopWatch = watchFrames(track, (seconds) => {
          info.textContent = seconds
            ? `高拍仪已 ${seconds} 秒没有画面，请检查连接线和电源，或重新选择设备。`
            : describeTrack(track);
        });
      }
    }
  } catch (error) {
    info.textContent = deviceError(error);
  }
  check();
}

function check() {
  const same = choices.face && choices.face === choices.document;
  say(alertBox, same ? "人像摄像头与高拍仪选择了同一设备，请为高拍仪选择文档摄像头。" : "");
  startButton.disabled = !open.has("document") || !open.has("audio") || !$("#consent").checked;
}

async function start() {
  startButton.disabled = true;
  say(alertBox, "");
  try {
    const { session } = await post(`/api/v1/cases/${encodeURIComponent(root.dataset.caseNo)}/sessions`, {
      consent: $("#consent").checked,
      consent_version: root.dataset.consentVersion,
    });
    for (const track of open.values()) track.stop();
    stopMeter();
    stopWatch();
    location.assign(`/sessions/${session.id}`);
  } catch (error) {
    say(alertBox, error.message);
    startButton.disabled = false;
  }
}

async function main() {
  let devices;
  try {
    devices = await listDevices();
  } catch (error) {
    new DeviceStatus($("#device-status")).unavailable(error);
    for (const source of ["face", "document", "audio"]) $(`#${source}-info`).textContent = "无法使用（见上方说明）";
    return;
  }
  choices = resolveChoices(devices);
  saveChoices(choices);
  fill($("#face-device"), devices.video, choices.face, "摄像头");
  fill($("#document-device"), devices.video, choices.document, "摄像头");
  fill($("#audio-device"), devices.audio, choices.audio, "麦克风");
  for (const source of ["face", "document", "audio"]) {
    $(`#${source}-device`).addEventListener("change", (event) => {
      choices[source] = event.target.value;
      saveChoices(choices);
      preview(source);
    });
  }
  startButton.addEventListener("click", start);
  $("#consent").addEventListener("change", check);
  for (const source of ["face", "document", "audio"]) await preview(source);
}

if (root) main().catch((error) => say(alertBox, `页面出错：${error.message}`));
