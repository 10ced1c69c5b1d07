// The videos on the live screen: one figure per receiving video slot (shown while the
// server says the slot carries someone's track), an <audio> per audio slot, and the
// local previews. The main feed goes to the stage (a document camera first), the rest
// are tiles.

import { el, ROLE_NAMES, SOURCE_NAMES } from "./ui.js";
import { describeQuality } from "./stats.js";

const OFF_TEXT = { face: "摄像头已关闭", document: "高拍仪已暂停" };
const FROZEN_SECONDS = 3; // a received video without a new frame this long is called frozen

function figure(extra = {}) {
  const video = el("video", { autoplay: true, playsinline: true, muted: true });
  video.muted = true;
  const off = el("p", { class: "off", hidden: true });
  const frozen = el("p", { class: "frozen", role: "status", hidden: true });
  const node = el(
    "figure",
    { class: "feed", hidden: true, ...extra },
    el("div", { class: "frame" }, video, off, frozen),
    el("figcaption", {}, el("span", { class: "name" }), el("span", { class: "quality" })),
  );
  return {
    node,
    video,
    off,
    frozen,
    name: node.querySelector(".name"),
    quality: node.querySelector(".quality"),
  };
}

function play(media) {
  // muted video may always play; an AbortError only means a newer source came first
  media.play().catch((error) => console.warn("video did not start", error));
}

export class Feeds {
  constructor({ stage, stageEmpty, tiles, sinks, viewer, onAudioBlocked }) {
    Object.assign(this, { stage, stageEmpty, tiles, sinks, viewer, onAudioBlocked });
    this.remote = new Map(); // mid → {kind, receiver, view, filled}
    this.videos = []; // figures for video slots, reused across connections
    this.audios = [];
    this.locals = new Map(); // source → figure
    this.people = new Map(); // participant → description
    this.localMids = new Map(); // source → mid on the current connection
    this.waiting = false;
  }

  /** A new connection: its receivers feed the slot elements, all empty until told. */
  bind(slots, publish) {
    this.remote.clear();
    let v = 0;
    let a = 0;
    for (const slot of slots) {
      let view;
      if (slot.kind === "video") {
        view = this.videos[v] ?? (this.videos[v] = figure());
        v += 1;
        view.video.srcObject = new MediaStream([slot.receiver.track]);
        view.node.dataset.mid = slot.mid;
      } else {
        view = this.audios[a] ?? (this.audios[a] = { node: el("audio", { autoplay: true }) });
        a += 1;
        this.sinks.append(view.node);
        view.node.srcObject = new MediaStream([slot.receiver.track]);
        view.node.dataset.mid = slot.mid;
      }
      this.remote.set(slot.mid, { ...slot, view, filled: null });
    }
    this.localMids = new Map(Object.entries(publish).map(([mid, source]) => [source, mid]));
    this.update({});
  }

  /** The server's "slots" message: what each receiving mid carries now. */
  update(slots) {
    for (const [mid, slot] of this.remote) {
      const filled = slots[mid] ?? null;
      slot.filled = filled;
      const node = slot.view.node;
      node.hidden = !filled;
      node.dataset.participant = filled?.participant ?? "";
      node.dataset.source = filled?.source ?? "";
      if (slot.kind === "audio" && filled) {
        node.play().catch((error) => {
          if (error.name === "NotAllowedError") this.onAudioBlocked(); // autoplay policy
        });
      }
    }
    this.render();
  }

  setPeople(list) {
    this.people = new Map(list.map((p) => [p.participant, p]));
    this.render();
  }

  setWaiting(waiting) {
    this.waiting = waiting;
    this.render();
  }

  /** A preview of what this side sends. */
  showLocal(source, track) {
    let view = this.locals.get(source);
    if (!view) {
      view = figure({ "data-local": "1", "data-source": source });
      view.node.classList.add("local");
      view.name.textContent = `本人 · ${SOURCE_NAMES[source]}`;
      this.locals.set(source, view);
      this.tiles.append(view.node);
    }
    view.video.srcObject = new MediaStream([track]);
    view.node.hidden = false;
  }

  setLocalOff(source, off) {
    const view = this.locals.get(source);
    if (!view) return;
    view.off.textContent = OFF_TEXT[source] ?? "";
    view.off.hidden = !off;
  }

  resumeAudio() {
    return Promise.all(this.audios.filter((a) => !a.node.hidden).map((a) => a.node.play()));
  }

  label(filled) {
    const person = this.people.get(filled.participant);
    const name = person?.display_name ?? filled.participant;
    const role = ROLE_NAMES[person?.role] ?? "";
    return `${name}${role ? `（${role}）` : ""} · ${SOURCE_NAMES[filled.source] ?? filled.source}`;
  }

  render() {
    const shown = [...this.remote.values()].filter((s) => s.kind === "video" && s.filled);
    const main =
      shown.find((s) => s.filled.source === "document") ??
      shown.find((s) => s.filled.source === "face") ??
      null;
    for (const slot of shown) {
      const view = slot.view;
      view.name.textContent = this.label(slot.filled);
      const person = this.people.get(slot.filled.participant);
      const off = person && person[`${slot.filled.source}_on`] === false;
      view.off.textContent = OFF_TEXT[slot.filled.source] ?? "";
      view.off.hidden = !off;
      const place = slot === main ? this.stage : this.tiles;
      view.node.classList.toggle("main", slot === main);
      if (view.node.parentNode !== place) {
        if (place === this.tiles) this.tiles.prepend(view.node);
        else place.append(view.node);
        play(view.video);
      }
    }
    this.stageEmpty.hidden = Boolean(main) || this.waiting;
    const paper = main?.filled.source === "document" ? main.view : null;
    this.viewer.attach(paper?.video ?? null, paper?.node.querySelector(".frame") ?? null);
  }

  /** Captions from a QualityMeter sample; a frozen picture says so on the picture
   *  (unless its sender turned it off, which says that instead). */
  quality(sample) {
    for (const slot of this.remote.values()) {
      if (slot.kind !== "video") continue;
      const q = slot.filled ? sample.get(`in:${slot.receiver.track.id}`) : null;
      if (slot.filled) slot.view.quality.textContent = describeQuality(q);
      const seconds = q && slot.view.off.hidden ? Math.floor(q.frozen) : 0;
      slot.view.frozen.hidden = seconds < FROZEN_SECONDS;
      slot.view.frozen.textContent =
        seconds < FROZEN_SECONDS
          ? ""
          : `${SOURCE_NAMES[slot.filled.source] ?? ""}画面已 ${seconds} 秒没有更新（对方设备或网络故障）`;
    }
    for (const [source, view] of this.locals) {
      const mid = this.localMids.get(source);
      const q = mid === undefined ? null : sample.get(`out:${mid}`);
      view.quality.textContent = q ? `发送 ${describeQuality(q)}` : "";
    }
  }
}
