// Shared by the interop runner and its Node peers: WHIP/WHEP signalling, SDP codec maps, and the
// RTP bookkeeping every viewer reports the same way (frames, codec, first-frame time, audio).
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

export function fail(msg) { throw new Error(msg); }

// Poll `fn` until it returns a truthy value, bounded; a timeout names `what` and the last value.
export async function waitFor(what, fn, timeoutMs = 20_000, every = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e.message; }
    await sleep(every);
  }
  fail(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

export async function devToken(base, room, role, identity) {
  const q = new URLSearchParams({ room, role, identity, name: identity });
  const r = await fetch(`${base}/api/dev/token?${q}`);
  if (!r.ok) fail(`dev token: HTTP ${r.status}`);
  return (await r.json()).token;
}

// POST an offer to /whip/ROOM or /whep/ROOM; returns the answer SDP or throws with the server's words.
export async function postOffer(url, token, sdp) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${token}` }, body: sdp });
  const text = await r.text();
  if (r.status !== 201) fail(`${url}: HTTP ${r.status}: ${text.trim()}`);
  return { answer: text, location: r.headers.get('location') };
}

// payload type -> { name, clock, fmtp } for each m= section's kind, from one SDP.
export function codecMap(sdp) {
  const map = new Map();
  for (const line of sdp.split(/\r?\n/)) {
    let m = /^a=rtpmap:(\d+) ([^/]+)\/(\d+)/.exec(line);
    if (m) map.set(Number(m[1]), { ...(map.get(Number(m[1])) || {}), name: m[2].toUpperCase(), clock: Number(m[3]) });
    m = /^a=fmtp:(\d+) (.*)$/.exec(line);
    if (m) map.set(Number(m[1]), { ...(map.get(Number(m[1])) || {}), fmtp: m[2] });
  }
  return map;
}

// Is this RTP payload the start of a key frame? VP8 (RFC 7741) and H264 (RFC 6184) only.
export function startsKeyframe(codec, payload) {
  if (codec === 'VP8') {
    if (payload.length < 1) return false;
    let i = 1;
    const x = payload[0] & 0x80, s = payload[0] & 0x10, pid = payload[0] & 0x07;
    if (!s || pid !== 0) return false;
    if (x) {
      const ext = payload[i++];
      if (ext & 0x80) i += (payload[i] & 0x80) ? 2 : 1;
      if (ext & 0x40) i += 1;
      if (ext & 0x30) i += 1;
    }
    return i < payload.length && (payload[i] & 0x01) === 0;
  }
  if (codec === 'H264') {
    const nal = payload[0] & 0x1f;
    if (nal === 5 || nal === 7) return true;
    if (nal === 28) return (payload[1] & 0x80) !== 0 && (payload[1] & 0x1f) === 5; // FU-A start of an IDR
    if (nal === 24) { // STAP-A: look at each aggregated unit
      for (let i = 1; i + 2 < payload.length;) {
        const size = payload.readUInt16BE(i);
        const t = payload[i + 2] & 0x1f;
        if (t === 5 || t === 7) return true;
        i += 2 + size;
      }
    }
  }
  return false;
}

// Counts what a viewer receives. `codecs` is the viewer's own payload-type map (from its offer),
// so a packet on a payload type the viewer never listed is counted as `unlisted_pt`.
export class Receipt {
  constructor(stack, postedAt) {
    Object.assign(this, { stack, postedAt, codec: null, frames: 0, firstTs: null, lastTs: null,
      firstFrameMs: null, sawKey: false, audioPackets: 0, audioCodec: null, unlistedPt: 0, videoPts: new Set() });
  }

  handleVideo(pkt, codecs) {
    const r = parseRtp(pkt);
    if (!r) return;
    const c = codecs.get(r.pt);
    if (!c) { this.unlistedPt++; return; }
    if (c.name === 'RTX' || c.name === 'RED' || c.name === 'ULPFEC') return;
    this.videoPts.add(r.pt);
    this.codec = c.name;
    if (!this.sawKey && startsKeyframe(c.name, r.payload)) this.sawKey = true;
    if (!this.sawKey || !r.marker) return;
    this.frames++;
    if (this.firstTs === null) { this.firstTs = r.ts; this.firstFrameMs = Date.now() - this.postedAt; }
    this.lastTs = r.ts;
  }

  handleAudio(pkt, codecs) {
    const r = parseRtp(pkt);
    if (!r) return;
    const c = codecs.get(r.pt);
    if (!c) { this.unlistedPt++; return; }
    this.audioCodec = c.name;
    this.audioPackets++;
  }

  spanMs() { return this.firstTs === null ? 0 : Math.round(((this.lastTs - this.firstTs) >>> 0) / 90); }

  enough() { return this.frames >= 20 && this.spanMs() >= 2000 && this.audioPackets > 0; }

  report(extra = {}) {
    return { stack: this.stack, codec: this.codec, frames: this.frames, span_ms: this.spanMs(), first_frame_ms: this.firstFrameMs,
      audio_packets: this.audioPackets, audio_codec: this.audioCodec, unlisted_pt: this.unlistedPt, ...extra };
  }
}

export function parseRtp(buf) {
  if (buf.length < 12 || (buf[0] >> 6) !== 2) return null;
  const pt = buf[1] & 0x7f;
  if (pt >= 72 && pt <= 79) return null; // RTCP
  const cc = buf[0] & 0x0f;
  let off = 12 + 4 * cc;
  if (buf[0] & 0x10) {
    if (buf.length < off + 4) return null;
    off += 4 + 4 * buf.readUInt16BE(off + 2);
  }
  let end = buf.length;
  if (buf[0] & 0x20) end -= buf[end - 1];
  if (off > end) return null;
  return { pt, marker: (buf[1] & 0x80) !== 0, seq: buf.readUInt16BE(2), ts: buf.readUInt32BE(4), payload: buf.subarray(off, end) };
}

// Parse `--key value` arguments into an object.
export function args(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  return out;
}

// The sellcast data channel check: open `sellcast`, say hello, collect the frame types that come back.
export function channelProbe() {
  return { opened: false, types: [] };
}
