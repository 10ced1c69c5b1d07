// Quality of each received (and sent) video from getStats: resolution, frame rate,
// bitrate and packet loss since the previous sample, and how long a received video
// has had no new frame.

function rate(now, before, field) {
  if (!before) return null;
  const seconds = (now.timestamp - before.timestamp) / 1000;
  return seconds > 0 ? ((now[field] - before[field]) * 8) / seconds : 0;
}

export function formatBitrate(bps) {
  if (bps === null) return "码率测量中";
  return bps >= 1_000_000 ? `${(bps / 1_000_000).toFixed(1)} Mbps` : `${Math.round(bps / 1000)} kbps`;
}

export class QualityMeter {
  constructor() {
    this.previous = new Map();
    this.lastFrame = new Map(); // "in:<track id>" → stats timestamp of its last new frame
  }

  /** Map: "in:<track id>" or "out:<mid>" → {width, height, fps, bitrate, loss, frozen}
   *  (frozen: seconds without a new received frame, 0 for sent video). */
  async sample(pc) {
    const report = await pc.getStats();
    const found = new Map();
    const next = new Map();
    for (const stat of report.values()) {
      if (stat.kind !== "video") continue;
      let key;
      let bitrate;
      let loss = null;
      let frozen = 0;
      if (stat.type === "inbound-rtp") {
        key = `in:${stat.trackIdentifier}`;
        const before = this.previous.get(key);
        if (!before || (stat.framesDecoded ?? 0) !== (before.framesDecoded ?? 0)) {
          this.lastFrame.set(key, stat.timestamp);
        }
        frozen = (stat.timestamp - (this.lastFrame.get(key) ?? stat.timestamp)) / 1000;
        bitrate = rate(stat, before, "bytesReceived");
        const lost = stat.packetsLost - (before?.packetsLost ?? 0);
        const got = stat.packetsReceived - (before?.packetsReceived ?? 0);
        loss = lost + got > 0 ? (100 * Math.max(0, lost)) / (lost + got) : 0;
      } else if (stat.type === "outbound-rtp" && stat.mid) {
        key = `out:${stat.mid}`;
        bitrate = rate(stat, this.previous.get(key), "bytesSent");
      } else {
        continue;
      }
      next.set(key, stat);
      found.set(key, {
        width: stat.frameWidth ?? 0,
        height: stat.frameHeight ?? 0,
        fps: stat.framesPerSecond ?? 0,
        bitrate,
        loss,
        frozen,
      });
    }
    this.previous = next;
    return found;
  }
}

/** "1280×720 · 15 帧/秒 · 1.8 Mbps · 丢包 0.0%" */
export function describeQuality(q) {
  if (!q || !q.width) return "暂无画面";
  const parts = [`${q.width}×${q.height}`, `${Math.round(q.fps)} 帧/秒`, formatBitrate(q.bitrate)];
  if (q.loss !== null) parts.push(`丢包 ${q.loss.toFixed(1)}%`);
  return parts.join(" · ");
}
