// WebM fix-up for Media Source Extensions. coreview's playable Opus files carry no
// CodecPrivate and say 0 channels (PyAV's add_mux_stream cannot set either; ordinary
// players do without), but Chromium's MSE parser requires the OpusHead and a channel
// count. This adds what a WebRTC Opus stream implies (2 channels, 48 kHz, no pre-skip,
// mapping family 0) to every Opus track entry that lacks it; the stored file is not
// touched. The rebuilt Segment
// has an unknown size (as a live stream's), which MSE accepts.

const EBML_ID = 0x1a45dfa3;
const SEGMENT = 0x18538067;
const TRACKS = 0x1654ae6b;
const TRACK_ENTRY = 0xae;
const CODEC_ID = 0x86;
const CODEC_PRIVATE = 0x63a2;
const AUDIO = 0xe1;
const CHANNELS = 0x9f;
const UNKNOWN_SIZE = [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
const OPUS_HEAD = [
  ...new TextEncoder().encode("OpusHead"),
  1, 2, 0, 0, 0x80, 0xbb, 0, 0, 0, 0, 0, // version, channels, pre-skip, 48000 Hz, gain
  0, // mapping family
];

function vint(bytes, at) {
  const first = bytes[at];
  let length = 1;
  while (length <= 8 && !(first & (0x80 >> (length - 1)))) length += 1;
  let value = first & (0xff >> length);
  let unknown = value === (0xff >> length);
  for (let i = 1; i < length; i += 1) {
    value = value * 256 + bytes[at + i];
    unknown = unknown && bytes[at + i] === 0xff;
  }
  return { value, length, unknown };
}

function element(bytes, at) {
  const first = bytes[at];
  let idLength = 1;
  while (idLength <= 4 && !(first & (0x80 >> (idLength - 1)))) idLength += 1;
  let id = 0;
  for (let i = 0; i < idLength; i += 1) id = id * 256 + bytes[at + i];
  const size = vint(bytes, at + idLength);
  const start = at + idLength + size.length;
  const end = size.unknown ? bytes.length : start + size.value;
  return { id, start, end, header: bytes.subarray(at, start) };
}

function children(bytes, from, to) {
  const found = [];
  for (let at = from; at < to; ) {
    const child = element(bytes, at);
    found.push(child);
    at = child.end;
  }
  return found;
}

function sized(idBytes, parts) {
  const length = parts.reduce((sum, p) => sum + p.length, 0);
  const size = [0x01, 0, 0, 0, 0, 0, 0, 0];
  for (let i = 7, n = length; i > 0; i -= 1, n = Math.floor(n / 256)) size[i] = n % 256;
  return [Uint8Array.from([...idBytes, ...size]), ...parts];
}

function idOf(header, idLength) {
  return header.subarray(0, idLength);
}

/** The file as MSE needs it: bytes unchanged unless an Opus track lacks CodecPrivate. */
export function forMediaSource(buffer) {
  const bytes = new Uint8Array(buffer);
  const top = children(bytes, 0, bytes.length);
  const segment = top.find((e) => e.id === SEGMENT);
  if (!top.length || top[0].id !== EBML_ID || !segment) return buffer;
  let changed = false;
  const parts = children(bytes, segment.start, segment.end).flatMap((child) => {
    if (child.id !== TRACKS) return [bytes.subarray(child.header.byteOffset, child.end)];
    const entries = children(bytes, child.start, child.end).flatMap((entry) => {
      const whole = bytes.subarray(entry.header.byteOffset, entry.end);
      if (entry.id !== TRACK_ENTRY) return [whole];
      const fields = children(bytes, entry.start, entry.end);
      const codec = fields.find((f) => f.id === CODEC_ID);
      const name = codec ? new TextDecoder().decode(bytes.subarray(codec.start, codec.end)) : "";
      if (name !== "A_OPUS" || fields.some((f) => f.id === CODEC_PRIVATE)) return [whole];
      changed = true;
      const body = bytes.slice(entry.start, entry.end);
      for (const audio of fields.filter((f) => f.id === AUDIO)) {
        for (const field of children(bytes, audio.start, audio.end)) {
          const last = field.end - 1 - entry.start;
          if (field.id === CHANNELS && field.end - field.start === 1 && body[last] === 0) {
            body[last] = 2;
          }
        }
      }
      const extra = Uint8Array.from([0x63, 0xa2, 0x80 | OPUS_HEAD.length, ...OPUS_HEAD]);
      return sized([TRACK_ENTRY], [body, extra]);
    });
    return sized(idOf(child.header, 4), entries);
  });
  if (!changed) return buffer;
  const head = bytes.subarray(0, segment.header.byteOffset);
  const segmentHeader = Uint8Array.from([0x18, 0x53, 0x80, 0x67, ...UNKNOWN_SIZE]);
  const out = new Uint8Array(
    head.length + segmentHeader.length + parts.reduce((s, p) => s + p.length, 0),
  );
  let at = 0;
  for (const part of [head, segmentHeader, ...parts]) {
    out.set(part, at);
    at += part.length;
  }
  return out.buffer;
}
