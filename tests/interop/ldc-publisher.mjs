// libdatachannel (npm node-datachannel) publishing the way OBS's WHIP output does: H264 on payload
// type 96 (profile-level-id=42e01f, packetization-mode=1), Opus on 111, one offer with every ICE
// candidate (no trickle), a bearer token. Video is an Annex-B H264 clip (access units split on the
// AUD NAL units x264 writes with aud=1), looped at 30 fps; audio is the 3-byte Opus silence frame.
// Args: --url WHIP_URL --token T --clip FILE.h264. Prints `PUBLISHING` once the answer is applied,
// then runs until killed.
import fs from 'node:fs';
import ndc from 'node-datachannel';
import { args, postOffer, waitFor } from './lib.mjs';

const FPS = 30;
const a = args();

// Split an Annex-B stream into access units: each starts at an AUD (NAL type 9).
function accessUnits(buf) {
  const starts = [];
  for (let i = 0; i + 4 < buf.length; i++) {
    if (buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 0 && buf[i + 3] === 1 && (buf[i + 4] & 0x1f) === 9) starts.push(i);
  }
  return starts.map((s, k) => buf.subarray(s, starts[k + 1] ?? buf.length));
}

const units = accessUnits(fs.readFileSync(a.clip));
if (units.length === 0) throw new Error(`${a.clip}: no access units (encode with x264 aud=1)`);
const pc = new ndc.PeerConnection('publisher', { iceServers: [], disableAutoNegotiation: true });

const video = new ndc.Video('0', 'SendOnly');
video.addH264Codec(96, 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1');
video.addSSRC(1111, 'obs-video', 'obs', 'video');
const vt = pc.addTrack(video);
const vcfg = new ndc.RtpPacketizationConfig(1111, 'obs-video', 96, 90000);
const vpack = new ndc.H264RtpPacketizer('LongStartSequence', vcfg);
vpack.addToChain(new ndc.RtcpSrReporter(vcfg));
vpack.addToChain(new ndc.RtcpNackResponder());
vt.setMediaHandler(vpack);

const audio = new ndc.Audio('1', 'SendOnly');
audio.addOpusCodec(111);
audio.addSSRC(2222, 'obs-audio', 'obs', 'audio');
const at = pc.addTrack(audio);
const acfg = new ndc.RtpPacketizationConfig(2222, 'obs-audio', 111, 48000);
const apack = new ndc.RtpPacketizer(acfg);
apack.addToChain(new ndc.RtcpSrReporter(acfg));
at.setMediaHandler(apack);

pc.setLocalDescription();
await waitFor('ICE gathering', () => pc.gatheringState() === 'complete', 5000, 20);
const { answer } = await postOffer(a.url, a.token, pc.localDescription().sdp);
pc.setRemoteDescription(answer, 'answer');
await waitFor('track open', () => vt.isOpen() && at.isOpen(), 10_000, 20);
console.log('PUBLISHING');

const t0 = Date.now();
let frame = 0;
let audioFrame = 0;
const SILENCE = Buffer.from([0xf8, 0xff, 0xfe]);
setInterval(() => {
  const due = Math.floor((Date.now() - t0) * FPS / 1000);
  for (; frame <= due; frame++) {
    vcfg.timestamp = (frame * (90000 / FPS)) >>> 0;
    vt.sendMessageBinary(units[frame % units.length]);
  }
  const audioDue = Math.floor((Date.now() - t0) / 20);
  for (; audioFrame <= audioDue; audioFrame++) {
    acfg.timestamp = (audioFrame * 960) >>> 0;
    at.sendMessageBinary(SILENCE);
  }
}, 10);
