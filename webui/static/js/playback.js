// The playback page: every recorded track of a session on one clock.
//
// Each lane (one participant's face, document or voice) is one media element fed by
// Media Source Extensions: the lane's WebM chunks are appended in order, each with
// timestampOffset = its start on the session timeline (from the server, which aligns
// tracks by RTP timestamps and sender reports). Only chunks near the playhead are kept
// in the buffer. A page clock drives all lanes: it waits while a lane that has media at
// the playhead is still loading, and pulls an element back when it drifts.

import { forMediaSource } from "./webm.js";

const data = JSON.parse(document.getElementById("playback-data").textContent);
const SOURCE_NAMES = { face: "人像", document: "高拍仪", audio: "声音" };
const STATUS_TEXT = {
  purged: "已按保存期限删除",
  missing: "文件缺失（未登记删除），请联系管理员核查",
  not_converted: "尚未生成可播放文件",
  failed: "可播放文件生成失败（原始分段已保存）",
  error: "无法加载该分段",
  unsupported: "浏览器不支持该编码的同步回放",
};
const AHEAD = 20; // seconds buffered ahead of the playhead
const BEHIND = 30; // seconds kept behind it
const DRIFT = 0.25; // seconds an element may stray before it is put back

const duration = Math.max(data.duration, 0.001);
const fmt = (t) => {
  const s = Math.max(0, Math.floor(t));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
};

class Lane {
  constructor(tracks) {
    const first = tracks[0];
    this.key = `${first.participant}/${first.source}`;
    this.kind = first.kind;
    this.chunks = tracks
      .flatMap((t) => t.chunks.map((c) => ({ ...c, mime: t.mime })))
      .sort((a, b) => a.start - b.start);
    this.start = Math.min(...tracks.map((t) => t.start));
    this.end = Math.max(...tracks.map((t) => t.end));
    this.appended = new Set();
    this.queue = [];
    this.busy = false;
    this.loading = null;
    this.el = document.createElement(this.kind === "audio" ? "audio" : "video");
    this.el.muted = false;
    this.el.playsInline = true;
    this.el.dataset.lane = this.key;
    for (const chunk of this.chunks) {
      if (chunk.status === "ok" && !(chunk.mime && MediaSource.isTypeSupported(chunk.mime))) {
        chunk.status = "unsupported";
      }
    }
    this.ready = this.open();
  }

  open() {
    this.source = new MediaSource();
    this.el.src = URL.createObjectURL(this.source);
    return new Promise((resolve) => {
      this.source.addEventListener(
        "sourceopen",
        () => {
          const mime = this.chunks.find((c) => c.status === "ok")?.mime;
          if (mime) {
            this.buffer = this.source.addSourceBuffer(mime);
            this.buffer.mode = "segments";
            this.mime = mime;
          }
          this.source.duration = duration;
          resolve();
        },
        { once: true },
      );
    });
  }

  chunkAt(t) {
    return this.chunks.find((c) => c.start <= t && t < c.end) ?? null;
  }

  buffered(t) {
    const ranges = this.el.buffered;
    for (let i = 0; i < ranges.length; i += 1) {
      if (ranges.start(i) - 0.05 <= t && t < ranges.end(i)) return true;
    }
    return false;
  }

  /** Load the chunks around ``t``: the one playing first, then those after it. */
  want(t) {
    if (!this.buffer) return;
    const wanted = this.chunks.filter(
      (c) =>
        c.status === "ok" &&
        c.end > t - 0.5 &&
        c.start < t + AHEAD &&
        !this.appended.has(c) &&
        c !== this.loading,
    );
    this.queue = wanted;
    this.pump();
  }

  async pump() {
    if (this.busy || !this.queue.length) return;
    this.busy = true;
    const chunk = this.queue.shift();
    this.loading = chunk;
    try {
      const url = `/api/v1/evidence/${chunk.sha256}?view=${encodeURIComponent(data.view)}`;
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const bytes = forMediaSource(await response.arrayBuffer());
      await this.trim(chunk.start);
      if (chunk.mime !== this.mime) {
        this.buffer.changeType(chunk.mime);
        this.mime = chunk.mime;
      }
      this.buffer.timestampOffset = chunk.start;
      await this.update(() => this.buffer.appendBuffer(bytes));
      this.appended.add(chunk);
    } catch (error) {
      console.warn("playback chunk", chunk.sha256, error);
      chunk.status = "error";
    }
    this.busy = false;
    this.loading = null;
    this.pump();
  }

  update(action) {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.buffer.removeEventListener("error", failed);
        resolve();
      };
      const failed = () => {
        this.buffer.removeEventListener("updateend", done);
        reject(new Error("SourceBuffer error"));
      };
      this.buffer.addEventListener("updateend", done, { once: true });
      this.buffer.addEventListener("error", failed, { once: true });
      action();
    });
  }

  /** Drop chunks far behind (or far ahead of) the playhead from the buffer. */
  async trim(t) {
    for (const chunk of [...this.appended]) {
      if (chunk.end < t - BEHIND || chunk.start > t + AHEAD * 2) {
        await this.update(() => this.buffer.remove(chunk.start, chunk.end));
        this.appended.delete(chunk);
      }
    }
  }

  /** A jump: what was queued for the old playhead gives way (what is buffered and
   * the chunk on its way stay). */
  jump(t) {
    this.want(t);
  }
}

class Player {
  constructor() {
    const byKey = new Map();
    for (const track of data.tracks) {
      const key = `${track.participant}/${track.source}`;
      byKey.set(key, [...(byKey.get(key) ?? []), track]);
    }
    const order = { document: 0, face: 1, audio: 2 };
    this.lanes = [...byKey.values()]
      .map((tracks) => new Lane(tracks))
      .sort((a, b) => order[a.key.split("/")[1]] - order[b.key.split("/")[1]]);
    this.t = 0;
    this.playing = false;
    this.since = 0;
    this.button = document.getElementById("pb-play");
    this.timeText = document.getElementById("pb-time");
    this.bar = document.getElementById("pb-bar");
    this.events = [...document.querySelectorAll("#pb-events li[data-t]")];
    this.render();
    this.bind();
    Promise.all(this.lanes.map((l) => l.ready)).then(() => this.seek(0));
    const tick = () => {
      this.tick();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  render() {
    const videos = document.getElementById("pb-videos");
    const audio = document.getElementById("pb-audio");
    for (const lane of this.lanes) {
      const [who, source] = lane.key.split("/");
      const tile = document.createElement("figure");
      tile.className = `pb-tile pb-${source}`;
      const caption = document.createElement("figcaption");
      caption.textContent = `${who} · ${SOURCE_NAMES[source] ?? source}`;
      lane.note = document.createElement("div");
      lane.note.className = "pb-note";
      lane.note.hidden = true;
      tile.append(lane.el, lane.note, caption);
      (lane.kind === "audio" ? audio : videos).append(tile);
    }
    const marks = document.getElementById("pb-marks");
    const put = (cls, from, to, title) => {
      const mark = document.createElement("span");
      mark.className = cls;
      mark.style.left = `${(100 * Math.max(0, from)) / duration}%`;
      mark.style.width = `${(100 * Math.max(0, Math.min(to, duration) - Math.max(0, from))) / duration}%`;
      mark.title = title;
      marks.append(mark);
    };
    for (const track of data.tracks) {
      const who = `${track.participant} 的${SOURCE_NAMES[track.source] ?? track.source}`;
      for (const gap of track.gaps) put("gap", gap.start, gap.end, `${who}：缺口 ${gap.reason}`);
      for (const c of track.chunks) {
        if (c.status === "purged") put("purged", c.start, c.end, `${who}：已按保存期限删除`);
      }
    }
    for (const li of this.events) {
      const t = Number(li.dataset.t);
      if (t >= 0 && t <= duration) put("tick", t, t, li.textContent.trim().split("\n")[0]);
    }
    this.bar.setAttribute("aria-valuemax", String(Math.round(duration)));
  }

  bind() {
    this.button.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    const fromPointer = (event) => {
      const box = this.bar.getBoundingClientRect();
      this.seek(((event.clientX - box.left) / box.width) * duration);
    };
    this.bar.addEventListener("pointerdown", (event) => {
      this.bar.setPointerCapture(event.pointerId);
      fromPointer(event);
      const move = (e) => fromPointer(e);
      this.bar.addEventListener("pointermove", move);
      this.bar.addEventListener("pointerup", () => this.bar.removeEventListener("pointermove", move), {
        once: true,
      });
    });
    this.bar.addEventListener("keydown", (event) => {
      const step = { ArrowLeft: -5, ArrowRight: 5, Home: -Infinity, End: Infinity }[event.key];
      if (step !== undefined) {
        event.preventDefault();
        this.seek(this.now() + step);
      } else if (event.key === " ") {
        event.preventDefault();
        this.button.click();
      }
    });
    for (const li of this.events) {
      li.querySelector(".pb-seek").addEventListener("click", () => this.seek(Number(li.dataset.t)));
    }
    const dialog = document.getElementById("pb-still-dialog");
    const image = document.getElementById("pb-still-img");
    for (const button of document.querySelectorAll(".pb-still")) {
      button.addEventListener("click", () => {
        image.removeAttribute("src");
        document.getElementById("pb-still-size").textContent = "";
        image.src = `/api/v1/evidence/${button.dataset.sha256}`;
        dialog.showModal();
      });
    }
    image.addEventListener("load", () => {
      const size = `${image.naturalWidth}×${image.naturalHeight}`;
      document.getElementById("pb-still-size").textContent = `原始尺寸 ${size}`;
    });
    image.addEventListener("error", () => {
      document.getElementById("pb-still-size").textContent = "该照片无法打开（可能已按保存期限删除）";
    });
    document.getElementById("pb-still-close").addEventListener("click", () => dialog.close());
  }

  now() {
    return this.playing ? this.t + (performance.now() - this.since) / 1000 : this.t;
  }

  play() {
    if (this.now() >= duration) this.seek(0);
    this.t = this.now();
    this.since = performance.now();
    this.playing = true;
    this.button.textContent = "暂停";
  }

  pause() {
    this.t = this.now();
    this.playing = false;
    this.button.textContent = "播放";
    for (const lane of this.lanes) lane.el.pause();
  }

  seek(t) {
    this.t = Math.min(Math.max(t, 0), duration);
    this.since = performance.now();
    for (const lane of this.lanes) {
      lane.jump(this.t);
      lane.el.currentTime = this.t; // also where the lane has nothing (yet): it waits there
    }
  }

  /** What a lane shows at ``t``: a note instead of media, or that it is loading. */
  state(lane, t) {
    const chunk = lane.chunkAt(t);
    if (!chunk) {
      const note = t < lane.start ? "尚未开始录制" : t >= lane.end ? "录制已结束" : "录制缺口";
      return { note, loading: false };
    }
    if (chunk.status !== "ok") return { note: STATUS_TEXT[chunk.status] ?? chunk.status, loading: false };
    const soon = Math.min(t + 0.3, chunk.end - 0.01); // a little ahead too, or it stalls at once
    const loading = !lane.buffered(t) || !lane.buffered(soon);
    return { note: loading && !lane.buffered(t) ? "加载中…" : "", loading };
  }

  tick() {
    let t = this.now();
    if (t >= duration) {
      this.pause();
      t = this.t = duration;
    }
    const states = this.lanes.map((lane) => this.state(lane, t));
    // While any lane loads, the clock and every lane hold, so none runs ahead.
    const waiting = states.some((s) => s.loading);
    this.lanes.forEach((lane, i) => {
      const { note, loading } = states[i];
      lane.note.textContent = note;
      lane.note.hidden = !note;
      lane.el.classList.toggle("pb-off", Boolean(note));
      if (loading || (lane.queue.length === 0 && !lane.busy)) lane.want(t);
      if (note || waiting || !this.playing) {
        if (!lane.el.paused) lane.el.pause();
      } else if (lane.el.paused) {
        lane.el.play().catch(() => {});
      }
      if (!note && !lane.el.seeking && Math.abs(lane.el.currentTime - t) > DRIFT) {
        lane.el.currentTime = t;
      }
    });
    if (waiting && this.playing) {
      this.t = t;
      this.since = performance.now();
    }
    this.show(t);
  }

  show(t) {
    const share = `${(100 * t) / duration}%`;
    document.getElementById("pb-fill").style.width = share;
    document.getElementById("pb-handle").style.left = share;
    this.timeText.textContent = `${fmt(t)} / ${fmt(duration)}`;
    this.bar.setAttribute("aria-valuenow", String(Math.round(t)));
    this.bar.dataset.t = t.toFixed(3);
    let current = null;
    for (const li of this.events) if (Number(li.dataset.t) <= t) current = li;
    for (const li of this.events) li.classList.toggle("current", li === current);
  }
}

new Player();
