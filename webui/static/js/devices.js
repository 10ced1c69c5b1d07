// Cameras and microphone: whether this page may use them at all, which device serves
// which source (remembered in this browser), the constraints each source is opened
// with, a watch on a camera that stops sending frames, and a microphone level meter.

const STORE = "coreview.devices";
export const SOURCES = ["face", "document", "audio"];

/** The document camera (高拍仪) is read, not watched: full detail up to 1080p, and
 *  Chrome keeps its resolution (contentHint "detail") rather than its frame rate. */
const VIDEO = {
  face: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15, max: 30 } },
  document: {
    width: { ideal: 1920, max: 1920 },
    height: { ideal: 1080, max: 1080 },
    frameRate: { ideal: 15, max: 15 },
  },
};

export function loadChoices() {
  try {
    const stored = JSON.parse(localStorage.getItem(STORE) ?? "{}");
    return stored && typeof stored === "object" ? stored : {};
  } catch {
    return {};
  }
}

export function saveChoices(choices) {
  try {
    localStorage.setItem(STORE, JSON.stringify(choices));
  } catch {
    // storage full or disabled: the choice holds for this page only
  }
}

/** Why this page cannot use cameras and microphones at all, or "". Browsers give them
 *  only to a secure context: https://, or http:// on this computer (127.0.0.1). */
export function mediaUnavailable() {
  if (!window.isSecureContext) {
    return (
      `本页面经未加密的 http:// 地址（${location.host}）打开，浏览器不允许网页使用摄像头和麦克风。` +
      "请改用 https:// 开头的地址打开本系统（由管理员开启 HTTPS，见说明文档“从其他电脑访问”），" +
      "或在运行服务的电脑上用 http://127.0.0.1 打开。"
    );
  }
  if (!navigator.mediaDevices?.getUserMedia) {
    return "此浏览器不支持网页使用摄像头和麦克风，请使用新版 Chrome、Edge 或 360 安全浏览器（极速模式）。";
  }
  return "";
}

class MediaUnavailable extends Error {
  name = "MediaUnavailable";
}

function ensureMedia() {
  const why = mediaUnavailable();
  if (why) throw new MediaUnavailable(why);
}

/** Cameras and microphones; asks for permission first when labels are hidden. */
export async function listDevices() {
  ensureMedia();
  let devices = await navigator.mediaDevices.enumerateDevices();
  const inputs = (list) => list.filter((d) => d.kind === "videoinput" || d.kind === "audioinput");
  if (inputs(devices).some((d) => !d.label)) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    for (const track of stream.getTracks()) track.stop();
    devices = await navigator.mediaDevices.enumerateDevices();
  }
  return {
    video: devices.filter((d) => d.kind === "videoinput"),
    audio: devices.filter((d) => d.kind === "audioinput"),
  };
}

/** Stored choices that still exist; else face = first camera, document = second. */
export function resolveChoices(devices, stored = loadChoices()) {
  const has = (list, id) => list.some((d) => d.deviceId === id);
  const video = devices.video;
  return {
    face: has(video, stored.face) ? stored.face : video[0]?.deviceId ?? "",
    document: has(video, stored.document)
      ? stored.document
      : (video[1] ?? video[0])?.deviceId ?? "",
    audio: has(devices.audio, stored.audio) ? stored.audio : devices.audio[0]?.deviceId ?? "",
  };
}

function constraints(source, deviceId) {
  const device = deviceId ? { deviceId: { exact: deviceId } } : {};
  if (source === "audio") {
    return { audio: { ...device, echoCancellation: true, noiseSuppression: true } };
  }
  return { video: { ...device, ...VIDEO[source] } };
}

/** Open one source's track. */
export async function openSource(source, deviceId) {
  ensureMedia();
  const stream = await navigator.mediaDevices.getUserMedia(constraints(source, deviceId));
  const [track] = stream.getTracks();
  if (source === "document") track.contentHint = "detail";
  return track;
}

/** Open every source of ``sources`` that can be opened; the others are reported. */
export async function openSources(sources, choices) {
  const tracks = new Map();
  const failed = [];
  for (const source of sources) {
    try {
      tracks.set(source, await openSource(source, choices[source]));
    } catch (error) {
      failed.push([source, error]);
    }
  }
  return { tracks, failed };
}

/** "1920×1080 · 15 帧/秒" for a camera track. */
export function describeTrack(track) {
  const s = track.getSettings();
  return s.width ? `${s.width}×${s.height} · ${Math.round(s.frameRate ?? 0)} 帧/秒` : "";
}

/** A Chinese reason for a getUserMedia failure. */
export function deviceError(error) {
  switch (error?.name) {
    case "MediaUnavailable":
      return error.message;
    case "NotAllowedError":
      return "浏览器未获准使用摄像头或麦克风，请在地址栏中允许后刷新页面。";
    case "NotFoundError":
    case "OverconstrainedError":
      return "未找到所选设备，请检查连接或重新选择。";
    case "NotReadableError":
      return "设备被其他程序占用，请关闭占用的程序后重试。";
    default:
      return `无法打开设备：${error?.message ?? error}`;
  }
}

/** Call ``onChange(seconds)`` when a camera track has sent no frame for ``stallMs``
 *  (seconds since its last frame, updated each second), and ``onChange(0)`` when frames
 *  come again. Counts the track's own frames (a clone read by a
 *  MediaStreamTrackProcessor), so a hidden or scrolled-away preview does not matter.
 *  Returns a function that stops watching. */
export function watchFrames(track, onChange, stallMs = 3000) {
  let last = performance.now();
  let stalled = 0;
  let stopSource;
  if (typeof MediaStreamTrackProcessor === "function") {
    const clone = track.clone();
    const reader = new MediaStreamTrackProcessor({ track: clone }).readable.getReader();
    (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        value.close();
        last = performance.now();
      }
    })().catch(() => {}); // the clone was stopped
    stopSource = () => {
      reader.cancel().catch(() => {});
      clone.stop();
    };
  } else {
    const video = Object.assign(document.createElement("video"), { muted: true });
    video.srcObject = new MediaStream([track]);
    const seen = () => {
      last = performance.now();
      handle = video.requestVideoFrameCallback(seen);
    };
    let handle = video.requestVideoFrameCallback(seen);
    video.play().catch(() => {});
    stopSource = () => {
      video.cancelVideoFrameCallback(handle);
      video.srcObject = null;
    };
  }
  const timer = setInterval(() => {
    const quiet = performance.now() - last;
    const seconds = quiet >= stallMs && track.readyState === "live" ? Math.floor(quiet / 1000) : 0;
    if (seconds !== stalled) onChange(seconds);
    stalled = seconds;
  }, 500);
  return () => {
    clearInterval(timer);
    stopSource();
  };
}

/** Drive a <meter> with the track's level; returns a function that stops it. */
export function levelMeter(track, meter) {
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  // Without a user gesture first the context starts suspended: resume on the first one.
  const resume = () => context.resume().catch(() => {});
  document.addEventListener("pointerdown", resume, { once: true });
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let peak = 0;
    for (const v of samples) peak = Math.max(peak, Math.abs(v));
    meter.value = Math.min(1, peak * 2);
  }, 100);
  return () => {
    clearInterval(timer);
    document.removeEventListener("pointerdown", resume);
    context.close().catch(() => {});
  };
}
