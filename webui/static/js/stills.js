// Document stills (高拍仪照片) on the live screen: the clerk takes one at the document
// camera's full resolution (ImageCapture.takePhoto, else grabFrame), hashes it here
// (SHA-256) and uploads it with the hash; the approver asks for one, optionally for a
// material; everyone sees the gallery, each still filed against its material, and opens
// one to zoom, rotate or see it full size. Approvers and auditors also take server-side
// snapshots of a live feed (listed here for them only).
//
// Each gallery item carries data-sha256, data-added-at and, once its picture has loaded,
// data-loaded-at (ms since the epoch); on the clerk's page a still it took also carries
// data-capture-started and data-photo-taken (bench/still.py reads them).

import { ApiError, get } from "./api.js";
import { $, el, SOURCE_NAMES } from "./ui.js";
import { Viewer } from "./viewer.js";

const STILL_TYPES = ["image/jpeg", "image/png", "image/webp"];

function clock(iso) {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : at.toLocaleTimeString("zh-CN", { hour12: false });
}

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

async function send(path, init) {
  let response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...init });
  } catch {
    throw new ApiError(0, "network", "网络连接失败，请检查网络后重试。");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error ?? {};
    throw new ApiError(response.status, error.code ?? `http_${response.status}`,
      error.message ?? `请求未能完成（${response.status}）。`);
  }
  return data;
}

/** A photo from the camera at its full resolution, as a JPEG, PNG or WebP blob. */
export async function takePhoto(track) {
  if (typeof ImageCapture === "undefined") throw new Error("此浏览器不支持拍照，请使用新版 Chrome 或 Edge。");
  const capture = new ImageCapture(track);
  try {
    const photo = await capture.takePhoto();
    if (STILL_TYPES.includes(photo.type)) return photo;
  } catch (error) {
    console.warn("takePhoto failed; grabbing a video frame instead", error);
  }
  const bitmap = await capture.grabFrame();
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("无法生成照片。"))), "image/jpeg", 0.92);
  });
}

export async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export class Stills {
  constructor({ sessionId, role, call, onProblem }) {
    Object.assign(this, { sessionId, role, call, onProblem });
    this.gallery = $("#gallery");
    this.empty = $("#gallery-empty");
    this.status = $("#still-status");
    this.requests = $("#still-requests");
    this.material = $("#still-material");
    this.shown = new Map(); // sha256 → still
    this.timings = new Map(); // sha256 → {captureStarted, photoTaken}
    this.dialog = $("#still-dialog");
    this.viewer = new Viewer($("#still-tools"), $("#still-zoom"));
    this.busy = false;
    $("#still-close").addEventListener("click", () => this.dialog.close());
    this.dialog.addEventListener("close", () => this.viewer.attach(null, null));
    $("#still-take")?.addEventListener("click", () => this.capture(this.chosenMaterial(), null));
    $("#still-request")?.addEventListener("click", () => this.ask());
    $("#snapshot")?.addEventListener("click", () => this.snapshotStage());
    this.requests.addEventListener("click", (event) => {
      const item = event.target.closest("[data-request]");
      if (event.target.closest("button") && item) {
        this.capture(item.dataset.materialId || null, item.dataset.request);
      }
    });
  }

  chosenMaterial() {
    return this.material?.value || null;
  }

  say(text) {
    this.status.textContent = text ?? "";
  }

  /** Buttons work only while the call is up (and, for the clerk, with a document camera). */
  enable(on) {
    const take = $("#still-take");
    if (take) take.disabled = !on || !this.call.tracks.has("document");
    const ask = $("#still-request");
    if (ask) ask.disabled = !on;
    for (const button of this.requests.querySelectorAll("button")) button.disabled = !on;
  }

  async load() {
    const listed = await get(`/api/v1/sessions/${this.sessionId}/stills`);
    for (const still of [...listed.stills, ...(listed.snapshots ?? [])]) this.add(still);
  }

  // -- requests ------------------------------------------------------------------------

  ask() {
    const material = this.chosenMaterial();
    if (this.call.requestStill(material === null ? null : Number(material))) {
      const name = this.material.selectedOptions[0]?.textContent;
      this.say(material ? `已请求拍摄：${name}` : "已请求拍摄照片");
    }
  }

  /** A "still_requested" message: the clerk sees a request to take; others a note. */
  requested(message) {
    const what = message.material?.name ?? "高拍仪照片";
    if (this.role !== "clerk") {
      this.say(`${message.display_name} 已请求拍摄：${what}，等待窗口人员拍摄。`);
      return;
    }
    const item = el(
      "li",
      { "data-request": message.request, "data-material-id": message.material?.id ?? "" },
      el("span", {}, `${message.display_name} 请求拍摄：${what}`),
      el("button", { type: "button" }, "拍摄"),
    );
    this.requests.append(item);
    this.say(`请将“${what}”放在高拍仪下，然后点击“拍摄”。`);
  }

  // -- taking and uploading (clerk) ----------------------------------------------------

  async capture(material, request) {
    const track = this.call.tracks.get("document");
    if (!track || this.busy) return;
    this.busy = true;
    const captureStarted = Date.now();
    try {
      this.say("正在拍摄…");
      const photo = await takePhoto(track);
      const photoTaken = Date.now();
      this.say("正在上传…");
      const digest = await sha256Hex(photo);
      this.timings.set(digest, { captureStarted, photoTaken });
      const query = new URLSearchParams();
      if (material) query.set("material", material);
      if (request) query.set("request", request);
      const answer = await send(`/api/v1/sessions/${this.sessionId}/stills?${query}`, {
        method: "POST",
        headers: { "Content-Type": photo.type, "X-Still-SHA256": digest, "X-CSRF-Token": csrfToken() },
        body: photo,
      });
      this.add(answer.still);
      this.say(`已上传照片（${answer.still.width}×${answer.still.height}）。`);
    } catch (error) {
      this.say("");
      this.onProblem(`拍照失败：${error.message}`);
    } finally {
      this.busy = false;
    }
  }

  // -- snapshots (approver, auditor) ---------------------------------------------------

  async snapshotStage() {
    const main = $("#stage figure.feed.main");
    if (!main?.dataset.participant) return;
    const button = $("#snapshot");
    button.disabled = true;
    this.say("正在截图…");
    try {
      const answer = await send(`/api/v1/sessions/${this.sessionId}/snapshots`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify({ participant: main.dataset.participant, source: main.dataset.source }),
      });
      this.add(answer.snapshot);
      this.say("已截图存证。");
    } catch (error) {
      this.say("");
      this.onProblem(`截图失败：${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  // -- the gallery ---------------------------------------------------------------------

  add(still) {
    if (this.shown.has(still.sha256)) return;
    this.shown.set(still.sha256, still);
    if (still.request) this.requests.querySelector(`[data-request="${still.request}"]`)?.remove();
    const label = still.role === "snapshot"
      ? `服务器截图 · ${SOURCE_NAMES[still.source] ?? still.source}`
      : still.material?.name ?? "未指定材料";
    const image = el("img", { src: still.url, alt: label, decoding: "async" });
    const item = el(
      "li",
      {
        class: still.role,
        "data-sha256": still.sha256,
        "data-material-id": still.material?.id ?? "",
        "data-added-at": String(Date.now()),
      },
      el("button", { type: "button", class: "thumb", title: `查看 ${label}` }, image),
      el("span", { class: "caption" }, `${label} · ${still.width}×${still.height} · ${clock(still.taken_at)}`),
    );
    const timing = this.timings.get(still.sha256);
    if (timing) {
      item.dataset.captureStarted = String(timing.captureStarted);
      item.dataset.photoTaken = String(timing.photoTaken);
    }
    image.addEventListener("load", () => {
      item.dataset.loadedAt = String(Date.now());
    }, { once: true });
    item.querySelector("button").addEventListener("click", () => this.open(still, label));
    this.gallery.append(item);
    this.empty.hidden = true;
    this.file(still, label);
  }

  /** Under its material in the case's material list. */
  file(still, label) {
    if (!still.material) return;
    const filed = document.querySelector(`.materials li[data-material-id="${still.material.id}"] .filed`);
    if (!filed) return;
    const count = filed.children.length + 1;
    const link = el("button", { type: "button", "data-sha256": still.sha256, title: `查看${label}照片` }, `照片${count}`);
    link.addEventListener("click", () => this.open(still, label));
    filed.append(link);
  }

  open(still, label) {
    const image = $("#still-image");
    image.src = still.url;
    image.alt = label;
    $("#still-full").href = still.url;
    $("#still-caption").textContent =
      `${label} · ${still.width}×${still.height} · ${clock(still.taken_at)} · SHA-256 ${still.sha256}`;
    this.dialog.showModal();
    this.viewer.attach(image, $("#still-frame"));
  }
}
