// One participant's presence in a review session across reconnects: a fresh join
// token, the signalling socket and a peer connection per connection. A dropped socket
// is retried with backoff; a failed peer connection is replaced by a new offer.
//
// Events (CustomEvent detail): joined (message), state (message), participants (list),
// slots (map), peer ({slots, publish} of a new connection), chat (message),
// chat_history (messages), marked (mark), decided (decision),
// still_requested (message), still_added (the still), notice ({code, message}),
// problem ({code, message}), link ({state: connecting | online | reconnecting}),
// finished ({reason: ended | hung_up | replaced | refused | logged_out, message}).

import { post, socketUrl } from "./api.js";
import { makeOffer } from "./peer.js";
import { CLOSE_ENDED, CLOSE_LOGIN_ENDED, CLOSE_POLICY, CLOSE_REPLACED, SignalClient } from "./signal.js";

export const TERMINAL = new Set(["ended", "cancelled", "timed_out"]);
const RETRY_MS = [500, 1000, 2000, 4000, 8000];
const RESTART_GAP_MS = 3000;
const RETRYABLE = new Set(["token_expired", "join_timeout"]);

export class Call extends EventTarget {
  constructor(sessionId, tracks) {
    super();
    this.sessionId = sessionId;
    this.tracks = tracks; // Map source → MediaStreamTrack, kept across connections
    this.media = { audio: tracks.has("audio"), face: tracks.has("face"), document: tracks.has("document") };
    this.signal = null;
    this.pc = null;
    this.pcSignal = null;
    this.state = null;
    this.hidden = false;
    this.done = false;
    this.failures = 0;
    this.iceServers = [];
    this.lastError = null;
    this.lastRestart = 0;
    this.restartTimer = null;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  on(type, handler) {
    this.addEventListener(type, (event) => handler(event.detail));
  }

  async start() {
    if (this.done) return;
    this.emit("link", { state: this.failures ? "reconnecting" : "connecting" });
    let token;
    try {
      ({ token } = await post(`/api/v1/sessions/${this.sessionId}/token`));
    } catch (error) {
      if (error.status === 0 || error.status >= 500) this.retry();
      else this.finish("refused", error.message);
      return;
    }
    const signal = new SignalClient(socketUrl(`/api/v1/sessions/${this.sessionId}/ws`));
    this.signal = signal;
    this.lastError = null;
    const current = (handler) => (message) => {
      if (this.signal === signal && !this.done) handler(message);
    };
    signal.on("state", current((m) => this.onState(m)));
    signal.on("participants", current((m) => this.emit("participants", m.participants)));
    signal.on("slots", current((m) => this.emit("slots", m.slots)));
    signal.on("answer", current((m) => this.onAnswer(m)));
    signal.on("chat_posted", current((m) => this.emit("chat", m)));
    signal.on("chat_history", current((m) => this.emit("chat_history", m.messages)));
    signal.on("material_marked", current((m) => this.emit("marked", m.mark)));
    signal.on("decision_recorded", current((m) => this.emit("decided", m.decision)));
    signal.on("still_requested", current((m) => this.emit("still_requested", m)));
    signal.on("still_added", current((m) => this.emit("still_added", m.still)));
    signal.on("notice", current((m) => this.emit("notice", m)));
    signal.on("error", current((m) => this.onError(m)));
    signal.on("close", current((d) => this.onClose(d)));
    let joined;
    try {
      joined = await signal.join(token);
    } catch {
      return; // the close handler retries or finishes
    }
    if (this.signal !== signal || this.done) return;
    this.failures = 0;
    this.hidden = joined.hidden;
    this.iceServers = joined.ice_servers ?? [];
    this.emit("joined", joined);
    this.emit("link", { state: "online" });
    if (!this.hidden) signal.send("media_state", this.media);
  }

  onState(message) {
    this.state = message.state;
    this.emit("state", message);
    if (TERMINAL.has(message.state)) {
      this.finish("ended", message.message);
    } else if (message.state === "live" && this.pcSignal !== this.signal) {
      this.connectMedia();
    }
  }

  async connectMedia() {
    const signal = this.signal;
    this.closePeer();
    this.pcSignal = signal;
    this.lastRestart = Date.now();
    let offer;
    try {
      offer = await makeOffer(this.iceServers, this.tracks);
    } catch (error) {
      this.emit("problem", { code: "webrtc", message: `无法建立音视频连接：${error.message}` });
      return;
    }
    if (this.signal !== signal || this.pcSignal !== signal || this.done) {
      offer.pc.close();
      return;
    }
    const pc = offer.pc;
    this.pc = pc;
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this.pc && pc.connectionState === "failed") this.restartMedia();
    });
    this.emit("peer", offer);
    signal.send("offer", { sdp: offer.sdp, publish: offer.publish });
  }

  /** A new peer connection over the same socket, at most once per RESTART_GAP_MS. */
  restartMedia() {
    if (this.restartTimer || this.done || this.state !== "live") return;
    const wait = Math.max(0, this.lastRestart + RESTART_GAP_MS - Date.now());
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (!this.done && this.signal && this.state === "live") {
        this.pcSignal = null;
        this.connectMedia();
      }
    }, wait);
  }

  onAnswer(message) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== "have-local-offer") return;
    pc.setRemoteDescription({ type: "answer", sdp: message.sdp }).catch((error) => {
      this.emit("problem", { code: "webrtc", message: `音视频协商失败：${error.message}` });
    });
  }

  onError(message) {
    this.lastError = message;
    if (message.code === "media_failed") this.restartMedia();
    this.emit("problem", message);
  }

  onClose({ code }) {
    this.closePeer();
    this.signal = null;
    this.pcSignal = null;
    if (code === CLOSE_REPLACED) {
      this.finish("replaced", "本会话已在其他窗口打开，本窗口已断开。");
    } else if (code === CLOSE_LOGIN_ENDED) {
      this.finish("logged_out", this.lastError?.message ?? "您的登录已失效，请重新登录。");
    } else if (code === CLOSE_ENDED) {
      this.finish("ended", "审办会话已结束。");
    } else if (code === CLOSE_POLICY && !RETRYABLE.has(this.lastError?.code)) {
      this.finish("refused", this.lastError?.message ?? "连接被服务器拒绝。");
    } else {
      this.retry();
    }
  }

  retry() {
    this.failures += 1;
    this.emit("link", { state: "reconnecting" });
    const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length) - 1];
    setTimeout(() => this.start(), delay);
  }

  closePeer() {
    if (this.pc) this.pc.close();
    this.pc = null;
  }

  finish(reason, message) {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.restartTimer);
    this.closePeer();
    const signal = this.signal;
    this.signal = null;
    signal?.close();
    for (const track of this.tracks.values()) track.stop();
    this.emit("finished", { reason, message });
  }

  // -- what the page asks for -----------------------------------------------------------

  setMedia(source, on) {
    const track = this.tracks.get(source);
    if (!track) return;
    track.enabled = on;
    this.media[source] = on;
    this.signal?.send("media_state", this.media);
  }

  chat(text) {
    return this.signal?.send("chat", { text }) ?? false;
  }

  /** Ask the clerk for a still, optionally for a material (matter_materials id). */
  requestStill(material) {
    return this.signal?.send("still_request", { material }) ?? false;
  }

  hangup() {
    this.signal?.send("hangup");
    this.finish("hung_up", "您已挂断，离开了本次审办。会话仍在进行时可重新加入。");
  }

  end() {
    this.signal?.send("end");
  }

  /** The clerk puts a session its approvers left back in the department's queue. */
  requeue() {
    return this.signal?.send("requeue") ?? false;
  }

  async cancel() {
    await post(`/api/v1/sessions/${this.sessionId}/cancel`);
  }
}
